package packaging

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Signer signs release artefacts with an OpenPGP key: the .deb (debsig's
// _gpgorigin member), the .rpm (its header and payload signatures, as
// `rpm --addsign` makes them), and detached signatures of any file
// (SHA256SUMS.asc). Signatures are v4 with SHA-256, which gpgv, rpm's
// verifiers and debsig-verify all check.
type Signer struct {
	entity *openpgp.Entity
}

// Errors a key file can give.
var (
	// ErrNoSigningKey: the file has no secret key able to sign.
	ErrNoSigningKey = errors.New("no secret signing key in the key file")
	// ErrManySigningKeys: the file holds secret keys of more than one
	// certificate (export the one to sign with).
	ErrManySigningKeys = errors.New("more than one secret key in the key file: export only the release key")
	// ErrPassphrase: the key is protected and the passphrase is missing
	// or wrong.
	ErrPassphrase = errors.New("the key is protected by a passphrase: set the right one in DTK_SIGN_PASSPHRASE")
)

// signConfig is every signature's configuration: SHA-256, the hash rpm,
// dpkg and gpg all expect.
var signConfig = &packet.Config{DefaultHash: crypto.SHA256}

// LoadSigner reads an OpenPGP secret key (ASCII-armored or binary, as
// `gpg --export-secret-keys` or `make release-key` write it), unlocking it
// with passphrase when it is protected.
func LoadSigner(path string, passphrase []byte) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	list, err := readKeyRing(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	var key *openpgp.Entity
	for _, e := range list {
		if e.PrivateKey == nil {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, ErrManySigningKeys)
		}
		key = e
	}
	if key == nil {
		return nil, fmt.Errorf("signing key %s: %w", path, ErrNoSigningKey)
	}
	if key.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("signing key %s: %w", path, ErrPassphrase)
		}
		if err := key.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("signing key %s: %w (%v)", path, ErrPassphrase, err)
		}
	}
	s := &Signer{entity: key}
	if _, ok := key.SigningKey(signConfig.Now()); !ok {
		return nil, fmt.Errorf("signing key %s (%s): %w: it is expired, revoked or not for signing", path, s.Fingerprint(), ErrNoSigningKey)
	}
	return s, nil
}

// readKeyRing reads armored or binary keys.
func readKeyRing(b []byte) (openpgp.EntityList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN PGP")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(b))
}

// Fingerprint is the key's fingerprint in upper-case hex, as gpg prints it.
func (s *Signer) Fingerprint() string {
	return strings.ToUpper(fmt.Sprintf("%x", s.entity.PrimaryKey.Fingerprint))
}

// Identity is the key's primary user ID ("dtk releases <...>").
func (s *Signer) Identity() string {
	if id := s.entity.PrimaryIdentity(); id != nil {
		return id.Name
	}
	return ""
}

// DetachSign writes a binary detached signature of r to w.
func (s *Signer) DetachSign(w io.Writer, r io.Reader) error {
	return openpgp.DetachSign(w, s.entity, r, signConfig)
}

// ArmoredDetachSign writes an ASCII-armored detached signature of r to w.
func (s *Signer) ArmoredDetachSign(w io.Writer, r io.Reader) error {
	return openpgp.ArmoredDetachSign(w, s.entity, r, signConfig)
}

// signBytes and armoredSignBytes adapt the signer to nfpm's SignFn.
func (s *Signer) signBytes(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	err := s.DetachSign(&b, r)
	return b.Bytes(), err
}

func (s *Signer) armoredSignBytes(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	err := s.ArmoredDetachSign(&b, r)
	return b.Bytes(), err
}

// SignFile writes path.asc, an ASCII-armored detached signature of path.
func (s *Signer) SignFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	out := path + ".asc"
	err = writeFile(out, func(w io.Writer) error { return s.ArmoredDetachSign(w, f) })
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", path, err)
	}
	return out, nil
}

// PublicKey is the public key (certificate): ASCII-armored for `rpm
// --import` and people, binary for `gpgv --keyring` and debsig-verify.
func (s *Signer) PublicKey(armored bool) ([]byte, error) {
	var b bytes.Buffer
	if !armored {
		if err := s.entity.Serialize(&b); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := s.entity.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\n")
	return b.Bytes(), nil
}

// GenerateKey makes a release key: RSA (bits; 4096 for a real release
// key, which every rpm, gpg and debsig-verify in use accept), a primary
// key that signs, no expiry. It returns the armored secret key (protected
// by passphrase when one is given) and the signer.
func GenerateKey(name, email string, bits int, passphrase []byte) ([]byte, *Signer, error) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: bits, DefaultHash: crypto.SHA256}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	s := &Signer{entity: e}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(passphrase) > 0 {
		// Serialize the self-signatures first, then a copy with the
		// secret parts encrypted.
		locked, err := copyEntity(e)
		if err != nil {
			return nil, nil, err
		}
		if err := locked.EncryptPrivateKeys(passphrase, cfg); err != nil {
			return nil, nil, err
		}
		err = locked.SerializePrivateWithoutSigning(w, cfg)
		if err != nil {
			return nil, nil, err
		}
	} else if err := e.SerializePrivate(w, cfg); err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	b.WriteString("\n")
	return b.Bytes(), s, nil
}

// copyEntity reads an entity back from its serialized secret form.
func copyEntity(e *openpgp.Entity) (*openpgp.Entity, error) {
	var b bytes.Buffer
	if err := e.SerializePrivate(&b, nil); err != nil {
		return nil, err
	}
	return openpgp.ReadEntity(packet.NewReader(&b))
}

// Verify checks a detached signature (armored or binary) of data against
// the keys in keyring (armored or binary) and returns the signing key's
// fingerprint.
func Verify(keyring []byte, data io.Reader, signature []byte) (string, error) {
	keys, err := readKeyRing(keyring)
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	var signer *openpgp.Entity
	if bytes.HasPrefix(bytes.TrimSpace(signature), []byte("-----BEGIN PGP SIGNATURE")) {
		signer, err = openpgp.CheckArmoredDetachedSignature(keys, data, bytes.NewReader(signature), nil)
	} else {
		signer, err = openpgp.CheckDetachedSignature(keys, data, bytes.NewReader(signature), nil)
	}
	if err != nil {
		return "", fmt.Errorf("bad signature: %w", err)
	}
	return strings.ToUpper(fmt.Sprintf("%x", signer.PrimaryKey.Fingerprint)), nil
}

// DebsigPolicy is a debsig-verify policy that accepts .deb files whose
// origin signature is by the key with the given long key ID (16 hex
// digits). It goes in /etc/debsig/policies/KEYID/dtk.pol, with the binary
// public key as /usr/share/debsig/keyrings/KEYID/debsig.gpg.
func DebsigPolicy(keyID string) string {
	return `<?xml version="1.0"?>
<!DOCTYPE Policy SYSTEM "https://www.debian.org/debsig/1.0/policy.dtd">
<Policy xmlns="https://www.debian.org/debsig/1.0/">
  <Origin Name="dtk" id="` + keyID + `" Description="dtk release signing key"/>
  <Selection>
    <Required Type="origin" File="debsig.gpg" id="` + keyID + `"/>
  </Selection>
  <Verification MinOptional="0">
    <Required Type="origin" File="debsig.gpg" id="` + keyID + `"/>
  </Verification>
</Policy>
`
}
