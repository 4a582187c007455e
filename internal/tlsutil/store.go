package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of VerifyPeer, wrapped: test them with errors.Is.
var (
	ErrNoCertificate    = errors.New("no certificate presented")
	ErrUnknownAuthority = errors.New("certificate is not signed by this cluster's CA")
	ErrExpired          = errors.New("certificate expired or not yet valid")
	ErrNoIdentity       = errors.New("certificate carries no valid dtk identity")
	ErrWrongUsage       = errors.New("certificate is not valid for this use")
	ErrWrongRole        = errors.New("certificate has the wrong role")
)

// peerError is a readable message that wraps one of the sentinel errors.
type peerError struct {
	kind error
	msg  string
}

func (e *peerError) Error() string { return e.msg }
func (e *peerError) Unwrap() error { return e.kind }

// Store holds this process's CA pool and certificate, reloadable at run
// time (SIGHUP) without dropping connections: the tls.Configs it returns
// read the current material at each handshake.
type Store struct {
	caFile, certFile, keyFile string

	reload sync.Mutex // serialises Reload
	cur    atomic.Pointer[material]
}

// material is one consistent generation of the TLS material.
type material struct {
	gen   uint64
	roots *x509.CertPool
	caPEM []byte
	cert  *tls.Certificate // nil: CA only
	leaf  *x509.Certificate
	id    Identity
}

// source names the three inputs in error messages: file names, or what
// they are when the material came as bytes.
type source struct{ ca, cert, key string }

// NewStore loads the CA file, the certificate and its key. certFile and
// keyFile may both be "" for a CA-only store. Every error names the file
// and what is wrong with it.
func NewStore(caFile, certFile, keyFile string) (*Store, error) {
	s := &Store{caFile: caFile, certFile: certFile, keyFile: keyFile}
	m, err := s.readFiles()
	if err != nil {
		return nil, err
	}
	m.gen = 1
	s.cur.Store(m)
	return s, nil
}

// NewStoreFromPEM is NewStore from bytes. certPEM and keyPEM may both be
// nil: a CA-only store, for a client that has no certificate yet. Reload
// of such a store does nothing.
func NewStoreFromPEM(caPEM, certPEM, keyPEM []byte) (*Store, error) {
	m, err := load(source{"CA PEM", "certificate PEM", "key PEM"}, caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	m.gen = 1
	s := &Store{}
	s.cur.Store(m)
	return s, nil
}

func (s *Store) readFiles() (*material, error) {
	if s.caFile == "" {
		return nil, errors.New("no CA file given")
	}
	if (s.certFile == "") != (s.keyFile == "") {
		return nil, fmt.Errorf("certificate file %q and key file %q: give both or neither", s.certFile, s.keyFile)
	}
	read := func(what, path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s file %s does not exist", what, path)
			}
			return nil, fmt.Errorf("%s file %s: %w", what, path, err)
		}
		return b, nil
	}
	caPEM, err := read("CA", s.caFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read("certificate", s.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("key", s.keyFile)
	if err != nil {
		return nil, err
	}
	return load(source{"CA file " + s.caFile, "certificate file " + s.certFile, "key file " + s.keyFile}, caPEM, certPEM, keyPEM)
}

// load checks and assembles the material.
func load(src source, caPEM, certPEM, keyPEM []byte) (*material, error) {
	cas, err := ParseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.ca, err)
	}
	now := time.Now()
	roots := x509.NewCertPool()
	valid := 0
	for i, c := range cas {
		if err := checkCA(c); err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", src.ca, i+1, err)
		}
		if now.Before(c.NotAfter) {
			valid++
		}
		roots.AddCert(c)
	}
	if valid == 0 {
		return nil, fmt.Errorf("%s: CA certificate expired at %s; create a new CA", src.ca, cas[0].NotAfter.UTC().Format(time.RFC3339))
	}
	m := &material{roots: roots, caPEM: append([]byte(nil), caPEM...)}
	if certPEM == nil && keyPEM == nil {
		return m, nil
	}
	if certPEM == nil || keyPEM == nil {
		return nil, fmt.Errorf("%s and %s: give both or neither", src.cert, src.key)
	}
	chain, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.cert, err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.key, err)
	}
	leaf := chain[0]
	if !sameKey(key.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("%s does not match the certificate in %s (%q)", src.key, src.cert, leaf.Subject.CommonName)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.cert, err)
	}
	if err := checkTime(leaf, now); err != nil {
		return nil, fmt.Errorf("%s: %w", src.cert, err)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	verified, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("%s: certificate %s is not signed by any CA in %s", src.cert, id, src.ca)
		}
		return nil, fmt.Errorf("%s: certificate %s does not verify against %s: %w", src.cert, id, src.ca, err)
	}
	// Present the leaf and the chain up to and including the CA that
	// signed it, so that a client can find the CA by its fingerprint.
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range verified[0] {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	m.cert, m.leaf, m.id = tc, leaf, id
	return m, nil
}

// checkTime fails with ErrExpired unless cert is valid at now.
func checkTime(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return &peerError{ErrExpired, "certificate expired at " + cert.NotAfter.UTC().Format(time.RFC3339)}
	case now.Before(cert.NotBefore):
		return &peerError{ErrExpired, "certificate is not valid before " + cert.NotBefore.UTC().Format(time.RFC3339) + " (check the clocks)"}
	}
	return nil
}

// Reload re-reads the files. On any error it keeps the current material
// and returns the error.
func (s *Store) Reload() error {
	if s.caFile == "" {
		return nil
	}
	s.reload.Lock()
	defer s.reload.Unlock()
	m, err := s.readFiles()
	if err != nil {
		return err
	}
	m.gen = s.cur.Load().gen + 1
	s.cur.Store(m)
	return nil
}

// Generation is 1 after NewStore and one more at every successful reload:
// callers key caches on it.
func (s *Store) Generation() uint64 { return s.cur.Load().gen }

// Identity is the identity of this process's certificate (zero if none).
func (s *Store) Identity() Identity { return s.cur.Load().id }

// Leaf is this process's certificate (nil if none).
func (s *Store) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Roots is the current CA pool.
func (s *Store) Roots() *x509.CertPool { return s.cur.Load().roots }

// CAPEM is the content of the CA file.
func (s *Store) CAPEM() []byte { return s.cur.Load().caPEM }

// ServerConfig is for the HTTP API. The certificate is chosen at each
// handshake from the current material. Client certificates are requested
// but not verified here: the HTTP layer verifies them with VerifyPeer so
// that it can answer with a readable JSON error.
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: s.getCertificate,
	}
}

func (s *Store) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := s.cur.Load()
	if m.cert == nil {
		return nil, errors.New("this process has no TLS certificate")
	}
	return m.cert, nil
}

// ClientConfig is for any client of a coordinator (dtkctl, agents, a
// coordinator calling another). It presents the current certificate, if
// any, and verifies the server against the current roots.
//
// Host names are deliberately not checked: the standard verification is
// turned off (InsecureSkipVerify) and VerifyConnection does the full chain
// verification itself, then requires the identity dtk://server/… in the
// certificate. Coordinators are reached by whatever address (IP, load
// balancer, DNS alias) and the CA only issues server certificates to
// coordinators, so the identity is what proves the peer is one.
func (s *Store) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		InsecureSkipVerify:   true, // verified in VerifyConnection, see above
		GetClientCertificate: s.getClientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := s.VerifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("server certificate refused: %w", err)
			}
			if id.Role != RoleServer {
				return fmt.Errorf("server certificate refused: %w", &peerError{ErrWrongRole, fmt.Sprintf("certificate is for %s, not a coordinator (server)", id)})
			}
			return nil
		},
	}
}

func (s *Store) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if m := s.cur.Load(); m.cert != nil {
		return m.cert, nil
	}
	return &tls.Certificate{}, nil // none: the server decides
}

// VerifyPeer verifies a peer's chain (leaf first) against the current
// roots, now, for usage, and returns the identity it carries. Errors wrap
// ErrNoCertificate, ErrUnknownAuthority, ErrExpired, ErrWrongUsage or
// ErrNoIdentity.
func (s *Store) VerifyPeer(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	who := leaf.Subject.CommonName
	if id, err := IdentityOf(leaf); err == nil {
		who = id.String()
	}
	now := time.Now()
	if err := checkTime(leaf, now); err != nil {
		return Identity{}, &peerError{ErrExpired, fmt.Sprintf("%v (%s)", err, who)}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: s.cur.Load().roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return Identity{}, &peerError{ErrUnknownAuthority, fmt.Sprintf("%s (%s, issued by %q)", ErrUnknownAuthority, who, leaf.Issuer.CommonName)}
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			return Identity{}, &peerError{ErrExpired, fmt.Sprintf("a certificate in the chain of %s expired or is not yet valid: %v", who, err)}
		case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
			return Identity{}, &peerError{ErrWrongUsage, fmt.Sprintf("certificate %s is not valid for %s", who, usageName(usage))}
		}
		return Identity{}, fmt.Errorf("certificate %s: %w", who, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, &peerError{ErrNoIdentity, err.Error()}
	}
	return id, nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication (only coordinators have server certificates)"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}
