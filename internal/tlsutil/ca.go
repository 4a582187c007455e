package tlsutil

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Defaults of CAOptions and CertOptions.
const (
	DefaultCACommonName = "dtk cluster CA"
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
	// clockSkew is how far back NotBefore is set, so that a peer whose
	// clock is a little behind accepts a fresh certificate.
	clockSkew = time.Minute
)

// CAOptions shape a new cluster CA.
type CAOptions struct {
	CommonName string        // default "dtk cluster CA"
	Validity   time.Duration // default 5 years
	KeyType    KeyType       // default ecdsa
}

// CreateCA makes a self-signed CA certificate and its key, both PEM.
func CreateCA(o CAOptions) (certPEM, keyPEM []byte, err error) {
	if o.CommonName == "" {
		o.CommonName = DefaultCACommonName
	}
	if o.Validity == 0 {
		o.Validity = DefaultCAValidity
	}
	if o.Validity < 0 {
		return nil, nil, fmt.Errorf("create CA: negative validity %s", o.Validity)
	}
	key, keyPEM, err := NewKey(o.KeyType)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(o.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: sign certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// CA is a loaded cluster CA that can issue certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// LoadCA reads a CA certificate and its key (PEM). It checks that the key
// is the certificate's and that the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert := certs[0]
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !sameKey(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("the CA key does not match the CA certificate %q (fingerprint %s)", cert.Subject.CommonName, Fingerprint(cert))
	}
	if err := checkCA(cert); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(cert)}, nil
}

// checkCA fails unless cert may sign certificates.
func checkCA(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("certificate %q is not a CA certificate (basic constraints CA:FALSE)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate %q may not sign certificates (no certSign key usage)", cert.Subject.CommonName)
	}
	return nil
}

// CertOptions shape a certificate issued by a CA.
type CertOptions struct {
	Role     Role
	Name     string
	DNSNames []string
	IPs      []net.IP
	Validity time.Duration // default: 1 year
	// NotBefore zero is now minus one minute (clock skew).
	NotBefore time.Time
	KeyType   KeyType
	// PublicKey, when set, is certified (signing a CSR) instead of a new
	// key being generated.
	PublicKey crypto.PublicKey
}

// Issue signs a certificate for the identity o.Role/o.Name. It returns the
// certificate and, unless o.PublicKey was given, its new key (PEM). The
// certificate never outlives the CA: NotAfter is clipped to the CA's.
func (ca *CA) Issue(o CertOptions) (certPEM, keyPEM []byte, err error) {
	id := Identity{Role: o.Role, Name: o.Name}
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("issue certificate: %w", err)
	}
	if o.Validity == 0 {
		o.Validity = DefaultCertValidity
	}
	if o.Validity < 0 {
		return nil, nil, fmt.Errorf("issue certificate for %s: negative validity %s", id, o.Validity)
	}
	notBefore := o.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-clockSkew)
	}
	notAfter := notBefore.Add(o.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, nil, fmt.Errorf("issue certificate for %s: the CA expires at %s, before the certificate would start; create a new CA", id, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	pub := o.PublicKey
	if pub == nil {
		var key crypto.Signer
		key, keyPEM, err = NewKey(o.KeyType)
		if err != nil {
			return nil, nil, fmt.Errorf("issue certificate for %s: %w", id, err)
		}
		pub = key.Public()
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	ski, err := keyID(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if o.Role == RoleServer {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		URIs:                  []*url.URL{id.URI()},
		SubjectKeyId:          ski,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// CreateCSR makes a certificate signing request for name, signed with key
// (PEM). The role is decided by whoever signs it.
func CreateCSR(key crypto.Signer, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), nil
}

// maxCSR bounds the CSR input: a real one is well under 2 KiB.
const maxCSR = 64 << 10

// ParseCSR reads a PEM certificate signing request and checks its
// signature (the requester holds the key).
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	if len(pemBytes) > maxCSR {
		return nil, fmt.Errorf("CSR too large: %d bytes (limit %d)", len(pemBytes), maxCSR)
	}
	var block *pem.Block
	rest := pemBytes
	for {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("CSR: no -----BEGIN CERTIFICATE REQUEST----- PEM block")
		}
		if block.Type == pemCSR || block.Type == "NEW CERTIFICATE REQUEST" {
			break
		}
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR: bad signature (the request was not signed by its key): %w", err)
	}
	return csr, nil
}
