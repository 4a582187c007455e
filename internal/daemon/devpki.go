package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// DevPKI is what a dev cluster secures itself with, made in its data dir:
// a CA, a server certificate for the coordinator, a client (operator)
// certificate for dtkctl, a node certificate per agent, a gossip key and a
// key-encryption key.
type DevPKI struct {
	Dir         string
	CA, CAKey   string
	ClientCert  string
	ClientKey   string
	GossipKey   string
	KeyringFile string
	Fingerprint string
	// Token is the management ACL token made at bootstrap.
	Token string
	certs map[string][2]string
	ca    *tlsutil.CA
}

// newDevPKI creates the material under dir/tls.
func newDevPKI(dataDir string) (*DevPKI, error) {
	dir := filepath.Join(dataDir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &DevPKI{Dir: dir, CA: filepath.Join(dir, "dtk-ca.pem"), CAKey: filepath.Join(dir, "dtk-ca-key.pem"), certs: map[string][2]string{}}
	certPEM, keyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{CommonName: "dtk dev cluster CA"})
	if err != nil {
		return nil, err
	}
	if err := tlsutil.WriteFile(p.CA, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := tlsutil.WriteFile(p.CAKey, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if p.ca, err = tlsutil.LoadCA(certPEM, keyPEM); err != nil {
		return nil, err
	}
	p.Fingerprint = tlsutil.Fingerprint(p.ca.Cert)
	if p.ClientCert, p.ClientKey, err = p.issue(tlsutil.RoleClient, "operator", nil); err != nil {
		return nil, err
	}
	if p.GossipKey, err = secret.GenerateKey(); err != nil {
		return nil, err
	}
	kek, err := secret.GenerateKey()
	if err != nil {
		return nil, err
	}
	p.KeyringFile = filepath.Join(dir, "keyring.key")
	if err := tlsutil.WriteFile(p.KeyringFile, []byte(kek+"\n"), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// issue writes a certificate and key for one identity.
func (p *DevPKI) issue(role tlsutil.Role, name string, ips []net.IP) (cert, key string, err error) {
	return p.ca.IssueFiles(tlsutil.CertOptions{Role: role, Name: name, IPs: ips, DNSNames: []string{"localhost"}}, p.Dir)
}

// files is the TLSFiles of one identity, issuing it on first use.
func (p *DevPKI) files(role tlsutil.Role, name, host string) (TLSFiles, error) {
	cert, key, err := p.issue(role, name, []net.IP{net.ParseIP(host)})
	if err != nil {
		return TLSFiles{}, err
	}
	return TLSFiles{CA: p.CA, Cert: cert, Key: key}, nil
}

// Exports are the shell lines that point dtkctl at the dev cluster.
func (p *DevPKI) Exports(httpAddr string) []string {
	return []string{
		"export DTK_ADDR=https://" + httpAddr,
		"export DTK_CACERT=" + p.CA,
		"export DTK_CLIENT_CERT=" + p.ClientCert,
		"export DTK_CLIENT_KEY=" + p.ClientKey,
		"export DTK_TOKEN=" + p.Token,
	}
}

// bootstrapACL makes the dev cluster's management token.
func (p *DevPKI) bootstrapACL(ctx context.Context, httpAddr string) error {
	store, err := tlsutil.NewStore(p.CA, p.ClientCert, p.ClientKey)
	if err != nil {
		return err
	}
	c := api.NewClient(httpAddr)
	c.Secure, c.HTTP = true, api.TLSHTTPClientFor(store)
	for {
		t, err := c.ACLBootstrap(ctx)
		if err == nil {
			p.Token = t.SecretID
			return nil
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code != http.StatusServiceUnavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeEnv writes the exports to dir/env for scripts (`. DIR/env`).
func (p *DevPKI) writeEnv(dataDir, httpAddr string) (string, error) {
	path := filepath.Join(dataDir, "env")
	body := strings.Join(p.Exports(httpAddr), "\n") + "\n"
	return path, tlsutil.WriteFile(path, []byte(body), 0o600)
}

func (p *DevPKI) String() string { return fmt.Sprintf("dev PKI in %s", p.Dir) }
