package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/internal/signing"
	"github.com/dtkhq/dtk/plan"
)

// Signed bundles: bundle export --sign-key signs every module that this
// key has not signed yet (a new archive, with its dtk.sig) and the
// manifest; bundle inspect and import --trusted check them offline.

// exportedModule is one module of a signed export: its archive, in a
// scratch file, and what signing did to it.
type exportedModule struct {
	entry bundle.Entry
	path  string
	// signed: a new archive with a new dtk.sig; was names the signature
	// it replaced ("" for none).
	signed bool
	was    string
}

// prepareSigned downloads each module's archive into tmp (checking its
// digest) and signs with k every module that k has not signed already:
// unpacked, its dtk.sig written, packed again.
func prepareSigned(ctx context.Context, cl *api.Client, mods []*plan.Module, k *signing.PrivateKey, signer, tmp string) ([]exportedModule, error) {
	lim := limits.Default()
	mine := signing.NewKeyring(k.Public())
	out := make([]exportedModule, 0, len(mods))
	for i, mod := range mods {
		em := exportedModule{entry: bundle.Entry{Name: mod.Name, Version: mod.Version, Digest: mod.Digest, Size: mod.Size},
			path: filepath.Join(tmp, fmt.Sprintf("%d.tar.gz", i))}
		if err := downloadBlob(ctx, cl, mod, em.path); err != nil {
			return nil, err
		}
		files, raw, err := archiveSig(em.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mod.Ref(), err)
		}
		if raw != nil {
			s, err := signing.VerifyModule(raw, mod.Name, mod.Version, files, mine)
			if err == nil {
				out = append(out, em) // signed by this key already: as it is
				continue
			}
			if s != nil {
				em.was = signing.Describe(s.KeyID, s.Signer)
			} else {
				em.was = "a damaged " + signing.SigFile
			}
		}
		if err := resign(em.path, filepath.Join(tmp, fmt.Sprint(i)), mod, k, signer, lim); err != nil {
			return nil, fmt.Errorf("sign %s: %w", mod.Ref(), err)
		}
		fi, err := os.Stat(em.path)
		if err != nil {
			return nil, err
		}
		sum, err := fileDigest(em.path)
		if err != nil {
			return nil, err
		}
		em.entry.Digest, em.entry.Size, em.signed = sum, fi.Size(), true
		out = append(out, em)
	}
	return out, nil
}

// resign unpacks the archive at p into dir, writes its dtk.sig and packs
// it back into p.
func resign(p, dir string, mod *plan.Module, k *signing.PrivateKey, signer string, lim limits.Limits) error {
	defer os.RemoveAll(dir)
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	al := archive.DefaultLimits
	al.MaxTotal, al.MaxFile, al.MaxFiles = lim.ModuleUnpackedBytes, lim.ModuleUnpackedBytes, lim.ModuleFiles
	err = al.Unpack(f, dir)
	f.Close()
	if err != nil {
		return err
	}
	m, err := loadForSigning(dir)
	if err != nil {
		return err
	}
	if m.Name != mod.Name || m.Version != mod.Version {
		return fmt.Errorf("the archive is module %s, the cluster lists it as %s", m.Ref(), mod.Ref())
	}
	sig, err := signing.SignModule(k, signer, m.Name, m.Version, m.Files, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, signing.SigFile), sig.Marshal(), 0o644); err != nil {
		return err
	}
	b, err := archive.Pack(dir)
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o600)
}

// downloadBlob writes a module's archive from the coordinator to p,
// checking its size and digest.
func downloadBlob(ctx context.Context, cl *api.Client, mod *plan.Module, p string) error {
	rc, err := cl.Blob(ctx, mod.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", mod.Ref(), err)
	}
	defer rc.Close()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: download: %w", mod.Ref(), err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != mod.Digest || n != mod.Size {
		return fmt.Errorf("%s: the archive downloaded is %s (%d bytes), the cluster lists %s (%d bytes)", mod.Ref(), got, n, mod.Digest, mod.Size)
	}
	return nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// archiveSig reads a module archive file: every file's digest and its
// dtk.sig.
func archiveSig(p string) (map[string]string, []byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	lim := limits.Default()
	return signing.ArchiveFiles(f, int(lim.ModuleFiles), lim.ModuleUnpackedBytes)
}

// moduleSigs is what a bundle's module archives say about their
// signatures, by digest.
type moduleSigs map[string]struct {
	files map[string]string
	raw   []byte
	err   error
}

// readBundleSigs reads and checks a whole bundle as verifyBundle does and
// collects each module archive's files and dtk.sig on the way.
func readBundleSigs(r io.Reader, name, suffix string) (*bundle.Manifest, string, moduleSigs, error) {
	sigs := moduleSigs{}
	lim := limits.Default()
	h := sha256.New()
	m, err := bundle.Read(io.TeeReader(r, h), func(digest string, size int64, r io.Reader) error {
		files, raw, err := signing.ArchiveFiles(r, int(lim.ModuleFiles), lim.ModuleUnpackedBytes)
		sigs[digest] = struct {
			files map[string]string
			raw   []byte
			err   error
		}{files, raw, err}
		return nil // Read reads the rest and checks the digest
	})
	if errors.Is(err, bundle.ErrInvalid) {
		msg := strings.TrimPrefix(err.Error(), bundle.ErrInvalid.Error()+": ")
		return nil, "", nil, usagef("bundle %s is refused: %s%s", name, msg, suffix)
	}
	if err != nil {
		return nil, "", nil, fmt.Errorf("read %s: %w", name, err)
	}
	return m, hex.EncodeToString(h.Sum(nil)), sigs, nil
}

// signerOf is the SIGNED BY cell of a module in a bundle: the signature's
// claim, checked or not.
func (s moduleSigs) signerOf(e bundle.Entry) string {
	ms := s[e.Digest]
	if ms.raw == nil {
		return "-"
	}
	sig, err := signing.ParseSignature(ms.raw)
	if err != nil {
		return "(damaged " + signing.SigFile + ")"
	}
	return sigColumn(sig.KeyID, sig.Signer)
}

// check verifies the bundle's signature and every module's against keys:
// each must be signed by one of them and hold. It returns the problems.
func (s moduleSigs) check(m *bundle.Manifest, keys *signing.Keyring) []string {
	var problems []string
	if err := signing.VerifyManifest(m, keys); err != nil {
		problems = append(problems, err.Error())
	}
	for _, e := range m.Modules {
		ms := s[e.Digest]
		if ms.err != nil {
			problems = append(problems, fmt.Sprintf("module %s: %v", e.Ref(), ms.err))
			continue
		}
		if _, err := signing.VerifyModule(ms.raw, e.Name, e.Version, ms.files, keys); err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, e.Ref()) {
				msg = e.Ref() + ": " + msg
			}
			problems = append(problems, "module "+msg)
		}
	}
	return problems
}
