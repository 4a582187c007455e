package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIdentity_RoundTrip(t *testing.T) {
	for _, s := range []string{"node/web-1", "server/c1", "client/operator", "node/a.b_c-d", "node/" + strings.Repeat("a", 63)} {
		id, err := ParseIdentity(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if id.String() != s {
			t.Errorf("%q round-trips to %q", s, id)
		}
		if u := id.URI().String(); u != "dtk://"+s {
			t.Errorf("URI of %s = %s", s, u)
		}
	}
	for _, s := range []string{"", "node", "node/", "/web", "admin/x", "node/Web", "node/-x", "node/a/b", "node/" + strings.Repeat("a", 64), "node/a b"} {
		if id, err := ParseIdentity(s); err == nil {
			t.Errorf("ParseIdentity(%q) = %v, want an error", s, id)
		}
	}
}

func TestCreateCA(t *testing.T) {
	certPEM, keyPEM, err := CreateCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("not a path-length-0 CA: IsCA %v, MaxPathLen %d", c.IsCA, c.MaxPathLen)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if c.Subject.CommonName != "dtk cluster CA" || len(c.SubjectKeyId) == 0 {
		t.Errorf("CN %q, SKI %x", c.Subject.CommonName, c.SubjectKeyId)
	}
	if life := c.NotAfter.Sub(time.Now()); life < 5*365*24*time.Hour-time.Hour || life > 5*365*24*time.Hour {
		t.Errorf("lifetime %s, want 5 years", life)
	}
	if c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s is not a random 128-bit number", SerialHex(c))
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("default key %T, want ecdsa", c.PublicKey)
	}
	if fp := Fingerprint(c); !strings.HasPrefix(fp, "sha256:") || len(fp) != 7+64 || fp != strings.ToLower(fp) {
		t.Errorf("fingerprint %q", fp)
	}
	if !bytes.Equal(ca.CertPEM, certPEM) {
		t.Error("CertPEM differs from the created PEM")
	}
	if _, _, err := CreateCA(CAOptions{KeyType: "rsa"}); err == nil || !strings.Contains(err.Error(), `unknown key type "rsa"`) {
		t.Errorf("rsa: %v", err)
	}
}

func TestLoadCA_Refuses(t *testing.T) {
	a := newCA(t, CAOptions{})
	_, otherKey, _ := CreateCA(CAOptions{})
	if _, err := LoadCA(a.CertPEM, otherKey); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	leaf, leafKey := issue(t, a, CertOptions{Role: RoleServer, Name: "c1"})
	if _, err := LoadCA(leaf, leafKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: %v", err)
	}
	if _, err := LoadCA([]byte("hello"), leafKey); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Errorf("garbage: %v", err)
	}
}

func TestIssue_RolesUsagesSANs(t *testing.T) {
	ca := newCA(t, CAOptions{})
	cases := []struct {
		role  Role
		name  string
		usage []x509.ExtKeyUsage
	}{
		{RoleServer, "c1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{RoleClient, "operator", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{RoleNode, "web-1", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tc := range cases {
		certPEM, keyPEM := issue(t, ca, CertOptions{Role: tc.role, Name: tc.name, DNSNames: []string{"c1.example"}, IPs: []net.IP{net.ParseIP("10.0.0.5")}})
		c := leafOf(t, certPEM)
		id, err := IdentityOf(c)
		if err != nil || id != (Identity{tc.role, tc.name}) {
			t.Errorf("%s: identity %v, %v", tc.role, id, err)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "dtk://"+string(tc.role)+"/"+tc.name {
			t.Errorf("%s: URIs %v", tc.role, c.URIs)
		}
		if !slices.Equal(c.ExtKeyUsage, tc.usage) {
			t.Errorf("%s: ext key usage %v, want %v", tc.role, c.ExtKeyUsage, tc.usage)
		}
		if c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0 {
			t.Errorf("%s: leaf may sign certificates", tc.role)
		}
		if c.Subject.CommonName != tc.name || !slices.Equal(c.DNSNames, []string{"c1.example"}) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) {
			t.Errorf("%s: CN %q DNS %v IPs %v", tc.role, c.Subject.CommonName, c.DNSNames, c.IPAddresses)
		}
		if !bytes.Equal(c.AuthorityKeyId, ca.Cert.SubjectKeyId) {
			t.Errorf("%s: AKI %x, CA SKI %x", tc.role, c.AuthorityKeyId, ca.Cert.SubjectKeyId)
		}
		if life := c.NotAfter.Sub(c.NotBefore); life != 365*24*time.Hour {
			t.Errorf("%s: lifetime %s, want a year", tc.role, life)
		}
		if d := time.Since(c.NotBefore); d < 50*time.Second || d > 2*time.Minute {
			t.Errorf("%s: NotBefore %s ago, want about a minute (clock skew)", tc.role, d)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), KeyUsages: tc.usage}); err != nil {
			t.Errorf("%s: does not verify: %v", tc.role, err)
		}
		key, err := ParseKeyPEM(keyPEM)
		if err != nil || !sameKey(key.Public(), c.PublicKey) {
			t.Errorf("%s: key %v", tc.role, err)
		}
		if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
			t.Errorf("%s: key is not PKCS#8 PEM", tc.role)
		}
	}
	if a, b := leafOf(t, mustIssue(t, ca)), leafOf(t, mustIssue(t, ca)); SerialHex(a) == SerialHex(b) {
		t.Error("two certificates with the same serial")
	}
}

func mustIssue(t *testing.T, ca *CA) []byte {
	c, _ := issue(t, ca, CertOptions{Role: RoleNode, Name: "n"})
	return c
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestIssue_ClippedToCA(t *testing.T) {
	ca := newCA(t, CAOptions{Validity: time.Hour})
	c := leafOf(t, mustIssue(t, ca))
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %s, want the CA's %s", c.NotAfter, ca.Cert.NotAfter)
	}
	if _, _, err := ca.Issue(CertOptions{Role: RoleNode, Name: "n", NotBefore: time.Now().Add(2 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "the CA expires") {
		t.Errorf("certificate starting after the CA's end: %v", err)
	}
}

func TestIssue_RefusesBadIdentity(t *testing.T) {
	ca := newCA(t, CAOptions{})
	for _, o := range []CertOptions{{Role: "admin", Name: "x"}, {Role: RoleNode, Name: ""}, {Role: RoleNode, Name: "Web_1!"}} {
		if _, _, err := ca.Issue(o); err == nil {
			t.Errorf("%+v issued", o)
		}
	}
}

func TestEd25519(t *testing.T) {
	ca := newCA(t, CAOptions{KeyType: KeyEd25519, CommonName: "ed CA"})
	if _, ok := ca.Cert.PublicKey.(ed25519.PublicKey); !ok {
		t.Fatalf("CA key %T", ca.Cert.PublicKey)
	}
	certPEM, _ := issue(t, ca, CertOptions{Role: RoleServer, Name: "c1", KeyType: KeyEd25519})
	if _, ok := leafOf(t, certPEM).PublicKey.(ed25519.PublicKey); !ok {
		t.Fatal("leaf key is not ed25519")
	}
	server := storeFor(t, ca, RoleServer, "c1")
	client := storeFor(t, ca, RoleClient, "operator")
	serr, cerr, _ := handshake(t, server.ServerConfig(), client.ClientConfig())
	if serr != nil || cerr != nil {
		t.Fatalf("server %v, client %v", serr, cerr)
	}
}

func TestCSR_RoundTrip(t *testing.T) {
	ca := newCA(t, CAOptions{})
	key, _, err := NewKey("")
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := CreateCSR(key, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "web-1" {
		t.Errorf("CN %q", csr.Subject.CommonName)
	}
	certPEM, keyPEM, err := ca.Issue(CertOptions{Role: RoleNode, Name: csr.Subject.CommonName, PublicKey: csr.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	if keyPEM != nil {
		t.Error("a key was returned for a CSR")
	}
	c := leafOf(t, certPEM)
	if !sameKey(key.Public(), c.PublicKey) {
		t.Error("the certificate is not for the CSR's key")
	}
	if id, _ := IdentityOf(c); id.String() != "node/web-1" {
		t.Errorf("identity %v", id)
	}

	// A CSR whose content was changed after signing is refused.
	b, _ := pem.Decode(csrPEM)
	der := bytes.Replace(b.Bytes, []byte("web-1"), []byte("web-2"), 1)
	if _, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered CSR: %v", err)
	}
	if _, err := ParseCSR(bytes.Repeat([]byte("A"), 64<<10+1)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("huge CSR: %v", err)
	}
	if _, err := ParseCSR([]byte("nope")); err == nil {
		t.Error("garbage CSR accepted")
	}
	if _, err := CreateCSR(key, "Bad Name"); err == nil {
		t.Error("CSR for an invalid name")
	}
}

func TestParseCertsPEM(t *testing.T) {
	ca := newCA(t, CAOptions{})
	certPEM, keyPEM := issue(t, ca, CertOptions{Role: RoleNode, Name: "n"})
	bundle := append(append(append([]byte{}, keyPEM...), certPEM...), ca.CertPEM...)
	certs, err := ParseCertsPEM(bundle)
	if err != nil || len(certs) != 2 {
		t.Fatalf("%d certificates, %v", len(certs), err)
	}
	if _, err := ParseKeyPEM(bundle); err != nil {
		t.Errorf("key among certificates: %v", err)
	}
	if _, err := ParseCertsPEM(keyPEM); err == nil || !strings.Contains(err.Error(), "no CERTIFICATE") {
		t.Errorf("key only: %v", err)
	}
	if _, err := ParseKeyPEM(certPEM); err == nil || !strings.Contains(err.Error(), "no PRIVATE KEY") {
		t.Errorf("certificate only: %v", err)
	}
}
