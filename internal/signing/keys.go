package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// PEM block types of the key files: PKCS #8 for the private key, PKIX
// (SubjectPublicKeyInfo) for the public one, as OpenSSL writes them.
const (
	privateBlock = "PRIVATE KEY"
	publicBlock  = "PUBLIC KEY"
)

// KeyIDLen is the length of a key id in hex digits (64 bits).
const KeyIDLen = 16

// PrivateKey is an Ed25519 signing key.
type PrivateKey struct {
	key ed25519.PrivateKey
	id  string
	// Signer is who the key was made for ("Alice <alice@example.com>"),
	// from the key file; `module sign` names it in signatures unless told
	// otherwise.
	Signer string
}

// PublicKey is the public half of a signing key.
type PublicKey struct {
	key ed25519.PublicKey
	id  string
	// Signer is who the key was made for, from the key file (information
	// for people: the signer a coordinator records comes from the
	// signature).
	Signer string
	// File is where the key was read from, if it was.
	File string
}

// GenerateKey makes a new Ed25519 key for signer (free text, may be
// empty).
func GenerateKey(signer string) (*PrivateKey, error) {
	if err := checkText("signer", signer); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &PrivateKey{key: priv, id: KeyID(priv.Public().(ed25519.PublicKey)), Signer: signer}, nil
}

// KeyID is the id of a public key: the first 16 hex digits of the SHA-256
// of its PKIX (SubjectPublicKeyInfo) DER encoding, which is also
// `openssl pkey -pubin -in NAME.pub -outform DER | sha256sum`.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("signing: marshal an Ed25519 public key: " + err.Error())
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:KeyIDLen]
}

// ID is the key's id (KeyID).
func (k *PrivateKey) ID() string { return k.id }

// ID is the key's id (KeyID).
func (k *PublicKey) ID() string { return k.id }

// Public is the key's public half.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{key: k.key.Public().(ed25519.PublicKey), id: k.id, Signer: k.Signer}
}

// NewPublicKey wraps an Ed25519 public key.
func NewPublicKey(pub ed25519.PublicKey, signer string) *PublicKey {
	return &PublicKey{key: pub, id: KeyID(pub), Signer: signer}
}

func (k *PrivateKey) sign(payload []byte) []byte { return ed25519.Sign(k.key, payload) }

func (k *PublicKey) verify(payload, sig []byte) bool { return ed25519.Verify(k.key, payload, sig) }

// MarshalPrivate is the private key file: a few lines saying what it is,
// then the key as PKCS #8 PEM. Text before the PEM block is allowed by
// RFC 7468 and skipped by OpenSSL.
func (k *PrivateKey) MarshalPrivate() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		panic("signing: marshal an Ed25519 private key: " + err.Error())
	}
	var b bytes.Buffer
	b.WriteString("dtk module signing key (Ed25519), PRIVATE: keep it offline, mode 0600\n")
	writePreamble(&b, k.id, k.Signer)
	pem.Encode(&b, &pem.Block{Type: privateBlock, Bytes: der})
	return b.Bytes()
}

// MarshalPublic is the public key file: a few lines saying what it is,
// then the key as PKIX PEM.
func (k *PublicKey) MarshalPublic() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.key)
	if err != nil {
		panic("signing: marshal an Ed25519 public key: " + err.Error())
	}
	var b bytes.Buffer
	b.WriteString("dtk module signing public key (Ed25519): coordinators trust it in modules.trusted_keys\n")
	writePreamble(&b, k.id, k.Signer)
	pem.Encode(&b, &pem.Block{Type: publicBlock, Bytes: der})
	return b.Bytes()
}

func writePreamble(b *bytes.Buffer, id, signer string) {
	fmt.Fprintf(b, "key id: %s\n", id)
	if signer != "" {
		fmt.Fprintf(b, "signer: %s\n", signer)
	}
}

// decodeKeyFile finds the one PEM block of a key file and the signer named
// in the text before it.
func decodeKeyFile(b []byte) (*pem.Block, string, error) {
	i := bytes.Index(b, []byte("-----BEGIN "))
	if i < 0 {
		return nil, "", errors.New("no PEM block: not a key file (dtkctl key create makes them)")
	}
	block, rest := pem.Decode(b[i:])
	if block == nil {
		return nil, "", errors.New("the PEM block is damaged")
	}
	if len(block.Headers) > 0 {
		return nil, "", errors.New("the key is encrypted or has PEM headers: dtk reads unencrypted PKCS #8 and PKIX keys")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", errors.New("more than one PEM block: give one key per file")
	}
	signer := ""
	for line := range strings.SplitSeq(string(b[:i]), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "signer:"); ok {
			signer = strings.TrimSpace(v)
		}
	}
	if checkText("signer", signer) != nil {
		signer = ""
	}
	return block, signer, nil
}

// ParsePrivateKey reads a private key file.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	block, signer, err := decodeKeyFile(b)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case privateBlock:
	case publicBlock:
		return nil, errors.New("this is a public key: sign with the private key (NAME.key)")
	default:
		return nil, fmt.Errorf("a %q PEM block is not a key dtk signs with: use an Ed25519 key (dtkctl key create)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #8 private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %s key: dtk signs with Ed25519 keys only (dtkctl key create)", keyKind(k))
	}
	return &PrivateKey{key: priv, id: KeyID(priv.Public().(ed25519.PublicKey)), Signer: signer}, nil
}

// ParsePublicKey reads a public key file.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	block, signer, err := decodeKeyFile(b)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case publicBlock:
	case privateBlock:
		return nil, errors.New("this is a private key: give only the public key (NAME.pub); keep the private one offline")
	default:
		return nil, fmt.Errorf("a %q PEM block is not a public key: use the NAME.pub of dtkctl key create", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %s key: dtk verifies Ed25519 keys only (dtkctl key create)", keyKind(k))
	}
	return NewPublicKey(pub, signer), nil
}

func keyKind(k any) string {
	s := fmt.Sprintf("%T", k)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*"), "crypto/")
	switch {
	case strings.HasPrefix(s, "rsa."):
		return "RSA"
	case strings.HasPrefix(s, "ecdsa."):
		return "ECDSA"
	case strings.HasPrefix(s, "ecdh."):
		return "ECDH"
	}
	return s
}

// LoadPrivateKey reads a private key file, which must not be open to
// group or others (as ssh insists for its keys).
func LoadPrivateKey(path string) (*PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("signing key %s: is a folder", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is open to group or others (mode %04o): chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (*PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("trusted key %s: %w", path, err)
	}
	k.File = path
	return k, nil
}

// Keyring is a set of trusted public keys, looked up by id. It does not
// change once made.
type Keyring struct {
	keys []*PublicKey
	byID map[string][]*PublicKey
}

// NewKeyring makes a keyring of keys; the same key given twice counts once.
func NewKeyring(keys ...*PublicKey) *Keyring {
	r := &Keyring{byID: map[string][]*PublicKey{}}
	for _, k := range keys {
		dup := false
		for _, o := range r.byID[k.id] {
			dup = dup || o.key.Equal(k.key)
		}
		if !dup {
			r.keys = append(r.keys, k)
			r.byID[k.id] = append(r.byID[k.id], k)
		}
	}
	return r
}

// LoadKeyring reads the public key files at paths.
func LoadKeyring(paths []string) (*Keyring, error) {
	var keys []*PublicKey
	var errs []error
	for _, p := range paths {
		k, err := LoadPublicKey(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewKeyring(keys...), nil
}

// Len is the number of keys.
func (r *Keyring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Keys lists the keys in the order they were given.
func (r *Keyring) Keys() []*PublicKey {
	if r == nil {
		return nil
	}
	return append([]*PublicKey(nil), r.keys...)
}

// lookup lists the keys of an id (several only if ids collide).
func (r *Keyring) lookup(id string) []*PublicKey {
	if r == nil {
		return nil
	}
	return r.byID[id]
}

// IDs lists the key ids, for messages.
func (r *Keyring) IDs() []string {
	var ids []string
	for _, k := range r.Keys() {
		ids = append(ids, k.id)
	}
	return ids
}
