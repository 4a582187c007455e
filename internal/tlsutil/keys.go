package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// KeyType is the kind of key to generate.
type KeyType string

const (
	// KeyECDSA is ECDSA on P-256, the default.
	KeyECDSA KeyType = "ecdsa"
	// KeyEd25519 is Ed25519.
	KeyEd25519 KeyType = "ed25519"
)

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// NewKey generates a private key of type kt ("" is ECDSA P-256) and
// returns it with its PKCS#8 PEM encoding.
func NewKey(kt KeyType) (crypto.Signer, []byte, error) {
	var key crypto.Signer
	switch kt {
	case "", KeyECDSA:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate ecdsa key: %w", err)
		}
		key = k
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		key = k
	default:
		return nil, nil, fmt.Errorf("unknown key type %q (want ecdsa or ed25519)", kt)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseKeyPEM reads the first private key in b: PKCS#8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). Other blocks
// (certificates in the same file) are skipped.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	sawPEM := false
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		sawPEM = true
		var (
			k   any
			err error
		)
		switch block.Type {
		case pemPrivateKey:
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted; dtk needs an unencrypted key (keep it readable by dtk only, mode 0600)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
	if !sawPEM {
		return nil, errors.New("not PEM: no -----BEGIN ... PRIVATE KEY----- block")
	}
	return nil, errors.New("no PRIVATE KEY block in the PEM data")
}

// ParseCertsPEM reads every CERTIFICATE block of b, in order; other blocks
// are skipped. It fails when there is none.
func ParseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	sawPEM := false
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		sawPEM = true
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if !sawPEM {
			return nil, errors.New("not PEM: no -----BEGIN CERTIFICATE----- block")
		}
		return nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	return certs, nil
}

// encodeCert is the PEM encoding of cert.
func encodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: cert.Raw})
}

// Fingerprint is "sha256:" and the lowercase hex SHA-256 of cert's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SerialHex is cert's serial number in lowercase hex.
func SerialHex(cert *x509.Certificate) string {
	return cert.SerialNumber.Text(16)
}

// newSerial is a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// keyID is a subject key identifier: the first 160 bits of the SHA-256 of
// the key's SubjectPublicKeyInfo DER. It only has to be stable and
// distinct per key.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// sameKey reports whether a and b are the same public key.
func sameKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
