// Command dtk-package builds dtk's release artifacts; the Makefile runs it.
//
//	dtk-package packages --version V --bin-dir 'dist/build/linux-{arch}' --share-dir bin/share --out dist [--sign-key KEY]
//	dtk-package dist     --version V --bin-dir 'dist/build/linux-{arch}' --share-dir bin/share --out dist [--sign-key KEY]
//	dtk-package keygen   --out DIR [--name NAME] [--email EMAIL] [--bits 4096]
//
// packages writes a .deb and an .rpm per arch; dist writes them too, plus
// one bundle per arch and dist/SHA256SUMS over everything it wrote. With
// --sign-key (an OpenPGP secret key; its passphrase, if any, in
// $DTK_SIGN_PASSPHRASE) everything is signed (packaging.Release); without,
// a warning says loudly that nothing is. keygen makes a new release key.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/packaging"
)

// passphraseEnv names the environment variable that holds the signing
// key's passphrase (never a flag: it would show in ps and in make's echo).
const passphraseEnv = "DTK_SIGN_PASSPHRASE"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dtk-package:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: dtk-package packages|dist|keygen [flags]")
	}
	switch args[0] {
	case "packages", "dist":
		return build(args[0], args[1:])
	case "keygen":
		return keygen(args[1:])
	}
	return fmt.Errorf("unknown command %q: packages, dist or keygen", args[0])
}

func build(what string, args []string) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	version := fs.String("version", "dev", "version, as `git describe` prints it")
	binDir := fs.String("bin-dir", "dist/build/linux-{arch}", "folder of dtk-agent and dtkctl; {arch} is replaced")
	out := fs.String("out", "dist", "output folder")
	repo := fs.String("repo", ".", "repository root")
	share := fs.String("share-dir", "", "folder of dtkctl's generated completions/ and man/ (make completions man); empty: none")
	maintainer := fs.String("maintainer", "", "package maintainer (default: "+packaging.DefaultMaintainer+")")
	signKey := fs.String("sign-key", "", "OpenPGP secret key to sign with (passphrase in $"+passphraseEnv+"); empty: unsigned")
	var arches []string
	fs.Func("arch", "architecture (repeatable; default: amd64 and arm64)", func(s string) error {
		arches = append(arches, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(arches) == 0 {
		arches = packaging.Arches
	}
	o := packaging.Options{
		Version: *version, BinDir: *binDir, RepoDir: *repo, ShareDir: *share, OutDir: *out,
		MTime: sourceDate(*repo), Maintainer: *maintainer,
	}
	if *signKey != "" {
		s, err := packaging.LoadSigner(*signKey, []byte(os.Getenv(passphraseEnv)))
		if err != nil {
			return err
		}
		o.Signer = s
	}
	if _, err := packaging.Release(o, arches, what == "dist", os.Stdout); err != nil {
		return err
	}
	if o.Signer == nil {
		fmt.Fprint(os.Stderr, packaging.UnsignedWarning)
	}
	return nil
}

// keygen writes a new release key into a folder: the secret key (0600,
// protected by $DTK_SIGN_PASSPHRASE when set) and the public key, armored
// and binary. It never overwrites a key.
func keygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "folder for the key files (made 0700)")
	name := fs.String("name", "dtk release signing key", "the key's user ID name")
	email := fs.String("email", "", "the key's user ID e-mail (default: none)")
	bits := fs.Int("bits", 4096, "RSA key size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("keygen: --out DIR is required")
	}
	secret := filepath.Join(*out, "dtk-release-secret-key.asc")
	if _, err := os.Stat(secret); err == nil {
		return fmt.Errorf("keygen: %s exists: not overwriting a release key (move it away first)", secret)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	pass := []byte(os.Getenv(passphraseEnv))
	sec, s, err := packaging.GenerateKey(*name, *email, *bits, pass)
	if err != nil {
		return err
	}
	if err := os.WriteFile(secret, sec, 0o600); err != nil {
		return err
	}
	for _, k := range []struct {
		name    string
		armored bool
	}{{packaging.PublicKeyArmored, true}, {packaging.PublicKeyBinary, false}} {
		b, err := s.PublicKey(k.armored)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, k.name), b, 0o644); err != nil {
			return err
		}
	}
	protected := "not protected by a passphrase (set " + passphraseEnv + " to protect the next one)"
	if len(pass) > 0 {
		protected = "protected by the passphrase in " + passphraseEnv
	}
	fmt.Printf("release key %s\n  fingerprint %s\n  secret key  %s (%s)\n  public key  %s, %s\n",
		s.Identity(), s.Fingerprint(), secret, protected,
		filepath.Join(*out, packaging.PublicKeyArmored), filepath.Join(*out, packaging.PublicKeyBinary))
	fmt.Println("Keep the secret key offline; publish the fingerprint where users can check it (docs/install.md).")
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH, else the last commit's time, else now:
// the time stamped on every packaged file.
func sourceDate(repo string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = repo
	if b, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC()
}
