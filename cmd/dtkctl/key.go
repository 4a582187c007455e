package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtkhq/dtk/internal/signing"
)

// KeyCmd is `dtkctl key`: signing keys, made and used offline.
type KeyCmd struct {
	Create KeyCreateCmd `cmd:"" help:"Make an Ed25519 key pair for signing modules and bundles (offline)."`
	Show   KeyShowCmd   `cmd:"" help:"Print a key file's id and signer (offline)."`
}

// KeyCreateCmd is `dtkctl key create --out NAME`.
type KeyCreateCmd struct {
	Out    string `required:"" help:"Write NAME.key (the private key, mode 0600) and NAME.pub (the public key)." placeholder:"NAME"`
	Signer string `help:"Who the key is for, e.g. \"Alice <alice@example.com>\": named in what it signs unless module sign --signer says otherwise."`
	Force  bool   `help:"Overwrite NAME.key and NAME.pub if they exist."`
	JSON   bool   `help:"Print JSON: the key id, the signer and both files."`
}

// Help is the detail of `key create --help`.
func (KeyCreateCmd) Help() string {
	return `Makes a new Ed25519 key without any network: NAME.key is the private key (PKCS #8 PEM, mode 0600; keep it offline), NAME.pub the public key (PKIX PEM) that coordinators trust in modules { trusted_keys = [...] }. The key id is the first 16 hex digits of the SHA-256 of the public key (DER). OpenSSL reads both files as they are.

Examples:
  dtkctl key create --out alice --signer "Alice <alice@example.com>"
  dtkctl module sign ./web --key alice.key`
}

// keyResult is what `key create --json` and `key show --json` print.
type keyResult struct {
	KeyID      string `json:"key_id"`
	Signer     string `json:"signer,omitempty"`
	Algorithm  string `json:"algorithm"`
	Kind       string `json:"kind,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
	PublicKey  string `json:"public_key,omitempty"`
}

// Run makes the key and writes both files, the private one first and
// never over an existing file unless --force.
func (c *KeyCreateCmd) Run(out *Output) error {
	base := strings.TrimSuffix(strings.TrimSuffix(c.Out, ".key"), ".pub")
	privPath, pubPath := base+".key", base+".pub"
	if !c.Force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Stat(p); err == nil {
				return usagef("%s exists: choose another --out, or --force to replace the key", p)
			}
		}
	}
	k, err := signing.GenerateKey(c.Signer)
	if err != nil {
		return usagef("--signer: %v", err)
	}
	if err := writeKeyFile(privPath, k.MarshalPrivate(), 0o600, c.Force); err != nil {
		return err
	}
	if err := writeKeyFile(pubPath, k.Public().MarshalPublic(), 0o644, c.Force); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(keyResult{KeyID: k.ID(), Signer: k.Signer, Algorithm: signing.Algorithm, PrivateKey: privPath, PublicKey: pubPath})
	}
	out.Printf("key %s%s\n", k.ID(), parens(k.Signer))
	out.Printf("  %s  private: keep it offline (mode 0600); sign with dtkctl module sign DIR --key %s\n", privPath, privPath)
	out.Printf("  %s  public: coordinators trust it in modules { trusted_keys = [\"/etc/dtk/keys/%s\"] }\n", pubPath, filepath.Base(pubPath))
	return nil
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// writeKeyFile writes b at path with mode perm: a new file, or with
// replace an existing one (its mode reset to perm).
func writeKeyFile(path string, b []byte, perm os.FileMode, replace bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if replace {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if errors.Is(err, os.ErrExist) {
		return usagef("%s exists: choose another --out, or --force to replace the key", path)
	}
	if err != nil {
		return usagef("%v", err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// KeyShowCmd is `dtkctl key show FILE`.
type KeyShowCmd struct {
	File string `arg:"" help:"A key file: NAME.pub or NAME.key." placeholder:"FILE"`
	JSON bool   `help:"Print JSON: the key id, signer and kind."`
}

// Run reads the file as a public key, else as a private one.
func (c *KeyShowCmd) Run(out *Output) error {
	b, err := os.ReadFile(c.File)
	if err != nil {
		return usagef("%v", err)
	}
	res := keyResult{Algorithm: signing.Algorithm}
	if pub, err := signing.ParsePublicKey(b); err == nil {
		res.KeyID, res.Signer, res.Kind = pub.ID(), pub.Signer, "public"
	} else if priv, perr := signing.ParsePrivateKey(b); perr == nil {
		res.KeyID, res.Signer, res.Kind = priv.ID(), priv.Signer, "private"
	} else {
		return usagef("%s: %v", c.File, err)
	}
	if c.JSON {
		return out.JSON(res)
	}
	out.Printf("key %s%s: Ed25519, %s\n", res.KeyID, parens(res.Signer), res.Kind)
	return nil
}
