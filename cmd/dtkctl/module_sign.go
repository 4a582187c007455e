package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/internal/signing"
	"github.com/dtkhq/dtk/plan"
)

// Signing a module folder and checking its signature, offline
// (docs/modules.md).

// ModuleSignCmd is `dtkctl module sign DIR --key NAME.key`.
type ModuleSignCmd struct {
	Dir    string `arg:"" help:"Module folder." placeholder:"DIR"`
	Key    string `required:"" help:"Private key file (dtkctl key create)." placeholder:"NAME.key" type:"path"`
	Signer string `help:"Who signs, named in the signature (default: the signer the key was made for)."`
	JSON   bool   `help:"Print JSON: the module, version, key id, signer, time and number of files signed."`
}

// Help is the detail of `module sign --help`.
func (ModuleSignCmd) Help() string {
	return `Writes DIR/dtk.sig: the SHA-256 of every file of the module (those module push sends: dot-folders such as .git are left out) with the module's name and version, signed with the key. It travels with the folder: push it, bundle it, commit it. Changing, adding or removing any file afterwards breaks the signature: sign again. Signing changes the module's archive, so sign before the first push of a version.

Examples:
  dtkctl module sign ./web --key alice.key
  dtkctl module verify ./web --trusted alice.pub && dtkctl module push ./web`
}

// Validate checks DIR.
func (c *ModuleSignCmd) Validate() error { return checkModuleDir(c.Dir) }

// signResult is what `module sign --json` and `module verify --json`
// print.
type signResult struct {
	Valid    bool   `json:"valid"`
	Module   string `json:"module,omitempty"`
	Version  string `json:"version,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Signer   string `json:"signer,omitempty"`
	SignedAt string `json:"signed_at,omitempty"`
	Files    int    `json:"files,omitempty"`
	// Replaced is the key id of the signature module sign replaced.
	Replaced string `json:"replaced,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Run loads the module, signs its files and writes dtk.sig.
func (c *ModuleSignCmd) Run(out *Output) error {
	k, err := signing.LoadPrivateKey(c.Key)
	if err != nil {
		return usagef("%v", err)
	}
	m, err := loadForSigning(c.Dir)
	if err != nil {
		return err
	}
	sig, err := signing.SignModule(k, c.Signer, m.Name, m.Version, m.Files, time.Now())
	if err != nil {
		return usagef("%v", err)
	}
	path := filepath.Join(c.Dir, signing.SigFile)
	replaced := ""
	if old, err := os.ReadFile(path); err == nil {
		if s, err := signing.ParseSignature(old); err == nil && s.KeyID != k.ID() {
			replaced = s.KeyID
		}
	}
	if err := writeKeepingModeOr(path, sig.Marshal(), 0o644); err != nil {
		return err
	}
	res := signResult{Valid: true, Module: m.Name, Version: m.Version, KeyID: sig.KeyID, Signer: sig.Signer,
		SignedAt: sig.SignedAt, Files: len(sig.Files), Replaced: replaced}
	if c.JSON {
		return out.JSON(res)
	}
	out.Printf("signed %s@%s with %s: %s; wrote %s\n", m.Name, m.Version, signing.Describe(sig.KeyID, sig.Signer), plural(len(sig.Files), "file"), path)
	if replaced != "" {
		out.Notef("replaced the signature of key %s\n", replaced)
	}
	return nil
}

// loadForSigning loads the module folder as module push will send it
// (dsl.Load skips dot-folders, as archive.Pack does), with a coordinator's
// default limits; an invalid module is a usage error.
func loadForSigning(dir string) (*plan.Module, error) {
	m, err := dsl.LoadWithin(dir, dslLimits(limits.Default()))
	var de *dsl.Error
	switch {
	case errors.As(err, &de):
		return nil, usagef("%s is not a valid module (dtkctl module validate %s shows where):\n%s", dir, dir, de.Error())
	case err != nil:
		return nil, usagef("%v", err)
	}
	return m, nil
}

// writeKeepingModeOr replaces path through a temporary file, keeping its
// mode, or creates it with perm.
func writeKeepingModeOr(path string, b []byte, perm os.FileMode) error {
	if _, err := os.Stat(path); err == nil {
		return writeKeepingMode(path, b)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ModuleVerifyCmd is `dtkctl module verify DIR --trusted NAME.pub...`.
type ModuleVerifyCmd struct {
	Dir     string   `arg:"" help:"Module folder." placeholder:"DIR"`
	Trusted []string `required:"" help:"Public key file to trust (NAME.pub of dtkctl key create); repeatable." placeholder:"NAME.pub" type:"path"`
	JSON    bool     `help:"Print JSON: valid, the module, the key id and signer, or the error."`
}

// Help is the detail of `module verify --help`.
func (ModuleVerifyCmd) Help() string {
	return `Checks DIR/dtk.sig as a coordinator with these trusted keys checks a pushed module: signed by one of the keys, for this module's name and version, over exactly the files the folder holds (no file changed, added or removed). Offline. Exit 1 when the signature does not hold.

Examples:
  dtkctl module verify ./web --trusted alice.pub --trusted ci.pub`
}

// Validate checks DIR.
func (c *ModuleVerifyCmd) Validate() error { return checkModuleDir(c.Dir) }

// Run verifies the folder's signature.
func (c *ModuleVerifyCmd) Run(out *Output) error {
	keys, err := signing.LoadKeyring(c.Trusted)
	if err != nil {
		return usagef("%v", err)
	}
	m, err := loadForSigning(c.Dir)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(c.Dir, signing.SigFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	res := signResult{Module: m.Name, Version: m.Version}
	sig, verr := signing.VerifyModule(raw, m.Name, m.Version, m.Files, keys)
	if sig != nil {
		res.KeyID, res.Signer, res.SignedAt, res.Files = sig.KeyID, sig.Signer, sig.SignedAt, len(sig.Files)
	}
	if verr != nil {
		res.Error = verr.Error()
	}
	res.Valid = verr == nil
	if c.JSON {
		if err := out.JSON(res); err != nil {
			return err
		}
	} else if res.Valid {
		out.Printf("ok: %s@%s is signed by %s (%s); its %s match\n", m.Name, m.Version, signing.Describe(sig.KeyID, sig.Signer),
			sig.SignedAt, plural(len(sig.Files), "file"))
	}
	if verr != nil {
		return failf("%s: %v", c.Dir, verr)
	}
	return nil
}

// staleSignature says how a packed module's dtk.sig no longer matches its
// files ("" when it has none or it matches), for a warning before a push:
// the coordinator would refuse it (if it checks signatures).
func staleSignature(tgz []byte) string {
	lim := limits.Default()
	files, raw, err := signing.ArchiveFiles(bytes.NewReader(tgz), int(lim.ModuleFiles), lim.ModuleUnpackedBytes)
	if err != nil || raw == nil {
		return ""
	}
	s, err := signing.ParseSignature(raw)
	if err != nil {
		return err.Error()
	}
	if d := s.Diff(files); d != "" {
		return fmt.Sprintf("%s no longer matches the files (%s)", signing.SigFile, d)
	}
	return ""
}

// sigColumn is a module's SIGNED BY cell: "SIGNER (KEY ID)", the key id
// alone, or "-".
func sigColumn(keyID, signer string) string {
	switch {
	case keyID == "":
		return "-"
	case signer == "":
		return keyID
	}
	return strings.TrimSpace(signer) + " (" + keyID + ")"
}
