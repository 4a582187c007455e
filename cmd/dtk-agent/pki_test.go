package main

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// testPKI is what a secure coordinator starts with, made in a temporary
// folder: a cluster CA, a server certificate and its key (mode 0600), and
// a gossip key.
type testPKI struct {
	ca                        *tlsutil.CA
	name                      string
	ips                       []net.IP
	CAFile, CertFile, KeyFile string
	GossipKey                 string
}

// newPKI makes a CA and a server certificate for coordinator name,
// valid for ips.
func newPKI(t *testing.T, name string, ips ...net.IP) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caPEM, caKeyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{CommonName: "dtk-agent test CA"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.LoadCA(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		ca: ca, name: name, ips: ips, GossipKey: key,
		CAFile:   filepath.Join(dir, "dtk-ca.pem"),
		CertFile: filepath.Join(dir, "server-"+name+".pem"),
		KeyFile:  filepath.Join(dir, "server-"+name+"-key.pem"),
	}
	if err := os.WriteFile(p.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p.reissue(t)
	return p
}

// reissue writes a new server certificate (new key, new serial) for the
// same name over the certificate and key files, and returns it.
func (p *testPKI) reissue(t *testing.T) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue(tlsutil.CertOptions{Role: tlsutil.RoleServer, Name: p.name, IPs: p.ips})
	if err != nil {
		t.Fatal(err)
	}
	// The key first, then the certificate: both are in place before the
	// caller signals the process.
	if err := tlsutil.WriteFile(p.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tlsutil.WriteFile(p.CertFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certs, err := tlsutil.ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// flags are the TLS flags of `run` (the gossip key is not among them: it
// belongs in the configuration file).
func (p *testPKI) flags() []string {
	return []string{"--tls-ca", p.CAFile, "--tls-cert", p.CertFile, "--tls-key", p.KeyFile}
}

// hcl is the configuration file's security part: the tls block and the
// gossip key.
func (p *testPKI) hcl() string {
	return "tls {\n  ca_file   = \"" + p.CAFile + "\"\n  cert_file = \"" + p.CertFile +
		"\"\n  key_file  = \"" + p.KeyFile + "\"\n}\nencrypt = \"" + p.GossipKey + "\"\n"
}

// clientStore trusts the CA and has no certificate of its own: enough to
// see which certificate a coordinator serves.
func (p *testPKI) clientStore(t *testing.T) *tlsutil.Store {
	t.Helper()
	s, err := tlsutil.NewStoreFromPEM(p.ca.CertPEM, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writePrivate writes a file that holds secrets, mode 0600.
func writePrivate(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
