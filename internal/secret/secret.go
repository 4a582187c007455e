// Package secret encrypts small values at rest with a key-encryption key
// (KEK): 32 random bytes kept in a file of their own, written as one line
// of base64 — the same format as a gossip key, so `dtk-agent keygen` makes
// either.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// prefix marks a sealed value and its format version.
const prefix = "dtk1:"

const nonceSize = 12

// ErrWrongKey is returned by Open when the sealed value does not
// authenticate: it was sealed with another key or label, or it is damaged.
var ErrWrongKey = errors.New("cannot open sealed value: sealed with another key-encryption key, or damaged")

// GenerateKey returns a new random key, base64 encoded.
func GenerateKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseKey decodes a base64 key, ignoring surrounding space.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != KeySize {
		return nil, fmt.Errorf("invalid key: want the standard base64 encoding of %d random bytes (44 characters, as printed by `dtk-agent keygen`)", KeySize)
	}
	return b, nil
}

// LoadKEK reads a key-encryption key from path. The file must not be
// accessible to group or others.
func LoadKEK(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key %s is accessible by group or others (mode %04o): chmod 600 %s", path, mode, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", path, err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", path, err)
	}
	return k, nil
}

func aead(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KeySize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(kek), KeySize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext with AES-256-GCM under kek, binding it to label
// (a value sealed for one purpose does not open for another). The result
// is "dtk1:" followed by the base64 of nonce and ciphertext.
func Seal(kek, plaintext []byte, label string) (string, error) {
	g, err := aead(kek)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := g.Seal(nonce, nonce, plaintext, []byte(label))
	return prefix + base64.StdEncoding.EncodeToString(out), nil
}

// Open reverses Seal. It returns ErrWrongKey when the value does not
// authenticate under kek and label.
func Open(kek []byte, sealed, label string) ([]byte, error) {
	g, err := aead(kek)
	if err != nil {
		return nil, err
	}
	sealed = strings.TrimSpace(sealed)
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, fmt.Errorf("not a sealed value: want the %q prefix", prefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("sealed value: bad base64: %w", err)
	}
	if len(b) < nonceSize+g.Overhead() {
		return nil, ErrWrongKey
	}
	plain, err := g.Open(nil, b[:nonceSize], b[nonceSize:], []byte(label))
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

// IsSealed reports whether s looks like the output of Seal.
func IsSealed(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), prefix) }
