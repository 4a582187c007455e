package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newCA(t *testing.T, o CAOptions) *CA {
	t.Helper()
	certPEM, keyPEM, err := CreateCA(o)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *CA, o CertOptions) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func leafOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// storeFor is a store holding a certificate for role/name from ca.
func storeFor(t *testing.T, ca *CA, role Role, name string) *Store {
	t.Helper()
	certPEM, keyPEM := issue(t, ca, CertOptions{Role: role, Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	s, err := NewStoreFromPEM(ca.CertPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func tempPaths(t *testing.T) (ca, cert, key string) {
	d := t.TempDir()
	return filepath.Join(d, "ca.pem"), filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
}

// handshake runs a TLS handshake over loopback TCP between serverCfg and
// clientCfg, then has the server send one byte, so that a refusal by the
// server in TLS 1.3 reaches the client. It returns both ends' errors and
// the certificate the client saw.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (serverErr, clientErr error, seen *x509.Certificate) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		s := tls.Server(c, serverCfg)
		if err := s.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = s.Write([]byte{1})
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, clientCfg)
	clientErr = tc.Handshake()
	if clientErr == nil {
		if p := tc.ConnectionState().PeerCertificates; len(p) > 0 {
			seen = p[0]
		}
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	return <-done, clientErr, seen
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one wrapping %q", err, target)
	}
}
