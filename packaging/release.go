package packaging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the files a signed release adds beside the artefacts.
const (
	SumsName         = "SHA256SUMS"
	SumsSigName      = "SHA256SUMS.asc"
	PublicKeyArmored = "dtk-release-key.asc" // for `rpm --import` and people
	PublicKeyBinary  = "dtk-release-key.gpg" // for `gpgv --keyring` and debsig-verify
)

// Release builds the packages for every arch (and with bundles, one bundle
// per arch and SHA256SUMS over all of them) into o.OutDir, as `make
// packages` and `make dist` do, and returns what it wrote. With o.Signer,
// the packages are signed inside (debsig _gpgorigin, rpm header
// signatures), every artefact gets a detached NAME.asc, SHA256SUMS gets
// SHA256SUMS.asc, the bundles carry a signed SHA256SUMS of their own, and
// the public key is written beside them. Progress goes to log.
func Release(o Options, arches []string, bundles bool, log io.Writer) ([]string, error) {
	var artefacts []string
	for _, arch := range arches {
		start := time.Now()
		oa := o
		oa.Arch = arch
		oa.BinDir = strings.ReplaceAll(o.BinDir, "{arch}", arch)
		made, err := Packages(oa)
		if err != nil {
			return nil, err
		}
		if bundles {
			b, err := Bundle(oa, made)
			if err != nil {
				return nil, err
			}
			made = append(made, b)
		}
		for _, p := range made {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "%-56s %6.1f MB\n", p, float64(fi.Size())/1e6)
		}
		artefacts = append(artefacts, made...)
		fmt.Fprintf(log, "linux-%s done in %s\n", arch, time.Since(start).Round(100*time.Millisecond))
	}
	written := append([]string(nil), artefacts...)
	// What an earlier run signed no longer matches: remove it first.
	for _, n := range []string{SumsSigName, PublicKeyArmored, PublicKeyBinary} {
		if err := os.Remove(filepath.Join(o.OutDir, n)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	for _, p := range artefacts {
		if err := os.Remove(p + ".asc"); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	if bundles {
		var names []string
		for _, p := range artefacts {
			names = append(names, filepath.Base(p))
		}
		if err := WriteSums(o.OutDir, names); err != nil {
			return nil, err
		}
		written = append(written, filepath.Join(o.OutDir, SumsName))
		fmt.Fprintln(log, filepath.Join(o.OutDir, SumsName))
	}
	if o.Signer == nil {
		return written, nil
	}
	toSign := append([]string(nil), artefacts...)
	if bundles {
		toSign = append(toSign, filepath.Join(o.OutDir, SumsName))
	}
	for _, p := range toSign {
		sig, err := o.Signer.SignFile(p)
		if err != nil {
			return nil, err
		}
		written = append(written, sig)
	}
	for _, k := range []struct {
		name    string
		armored bool
	}{{PublicKeyArmored, true}, {PublicKeyBinary, false}} {
		b, err := o.Signer.PublicKey(k.armored)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(o.OutDir, k.name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		written = append(written, p)
	}
	fmt.Fprintf(log, "signed with %s (%s)\n", o.Signer.Fingerprint(), o.Signer.Identity())
	return written, nil
}

// UnsignedWarning is what `make packages` and `make dist` print, loudly,
// when no key was given.
const UnsignedWarning = `
#############################################################################
#  WARNING: these release artefacts are NOT SIGNED (no SIGN_KEY was given). #
#  Nobody can tell them from forgeries: do not publish them.                #
#  Sign with:  make dist SIGN_KEY=path/to/release-key.asc                   #
#  (passphrase in DTK_SIGN_PASSPHRASE; a new key: make release-key)         #
#############################################################################
`
