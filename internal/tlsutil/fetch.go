package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// normFingerprint turns "sha256:AB:CD…", "abcd…" and the like into 64
// lowercase hex digits.
func normFingerprint(fp string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(fp))
	s = strings.TrimPrefix(s, "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 fingerprint (sha256: and 64 hex digits, as printed by `dtk-agent tls ca fingerprint`)", fp)
	}
	return s, nil
}

// FetchCA fetches the cluster CA from the coordinator at addr (host:port),
// trusting it by its fingerprint alone: the TLS connection is not verified,
// instead the presented chain must hold a CA certificate with that
// fingerprint ("sha256:…", case and colons do not matter), and the
// coordinator's own certificate must verify against it as a server. The
// CA is returned PEM-encoded.
func FetchCA(ctx context.Context, addr, fingerprint string) ([]byte, error) {
	want, err := normFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below against the pinned fingerprint.
		InsecureSkipVerify: true,
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fetch CA: connect to the coordinator at %s: %w", addr, err)
	}
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	conn.Close()
	if len(chain) == 0 {
		return nil, fmt.Errorf("fetch CA: the coordinator at %s presented no certificate", addr)
	}
	var ca *x509.Certificate
	for _, c := range chain {
		if Fingerprint(c) == "sha256:"+want {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("fetch CA: the coordinator at %s presented no CA with fingerprint sha256:%s; check the fingerprint printed by `dtk-agent tls ca create` (or `dtk-agent tls ca fingerprint dtk-ca.pem`)", addr, want)
	}
	if err := checkCA(ca); err != nil {
		return nil, fmt.Errorf("fetch CA: the certificate with fingerprint sha256:%s at %s: %w", want, addr, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("fetch CA: the certificate of the coordinator at %s does not verify against the CA sha256:%s: %w", addr, want, err)
	}
	if id, err := IdentityOf(leaf); err != nil || id.Role != RoleServer {
		return nil, fmt.Errorf("fetch CA: the service at %s is not a dtk coordinator (its certificate is not a dtk server certificate)", addr)
	}
	return encodeCert(ca), nil
}
