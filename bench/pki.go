package bench

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// PKI is what a benchmark cluster secures itself with, made in-process in
// its folder: a cluster CA, a server certificate per coordinator, a node
// certificate per agent (files for real processes, in memory for simulated
// agents), an operator (client) certificate for the benchmark's own calls,
// and a gossip key. A nil *PKI is the insecure configuration (`dtk-agent
// run --insecure`, plain HTTP): every method works on it.
type PKI struct {
	Dir       string
	CAFile    string
	GossipKey string

	ca       *tlsutil.CA
	caPEM    []byte
	operator *tlsutil.Store
}

// NewPKI creates the CA, the operator certificate and the gossip key under
// dir/tls.
func NewPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: filepath.Join(dir, "tls")}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{CommonName: "dtk bench CA"})
	if err != nil {
		return nil, err
	}
	if p.ca, err = tlsutil.LoadCA(certPEM, keyPEM); err != nil {
		return nil, err
	}
	p.caPEM = certPEM
	p.CAFile = filepath.Join(p.Dir, "ca.pem")
	if err := tlsutil.WriteFile(p.CAFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := tlsutil.WriteFile(filepath.Join(p.Dir, "ca-key.pem"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if p.operator, err = p.Store(tlsutil.RoleClient, "bench-operator"); err != nil {
		return nil, err
	}
	if p.GossipKey, err = secret.GenerateKey(); err != nil {
		return nil, err
	}
	return p, nil
}

// Secure says TLS is on.
func (p *PKI) Secure() bool { return p != nil }

// Store issues a certificate for role/name and returns it loaded, without
// touching the disk. A nil PKI returns a nil store.
func (p *PKI) Store(role tlsutil.Role, name string) (*tlsutil.Store, error) {
	if p == nil {
		return nil, nil
	}
	certPEM, keyPEM, err := p.ca.Issue(tlsutil.CertOptions{Role: role, Name: name})
	if err != nil {
		return nil, err
	}
	return tlsutil.NewStoreFromPEM(p.caPEM, certPEM, keyPEM)
}

// NodeStores issues node certificates for names, spread over every core
// (one takes about 0.6 ms here: 5,000 take ~3 s on one core). A nil PKI
// returns nil stores.
func (p *PKI) NodeStores(names []string) ([]*tlsutil.Store, error) {
	out := make([]*tlsutil.Store, len(names))
	if p == nil {
		return out, nil
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, len(names)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(names); i += workers {
				st, err := p.Store(tlsutil.RoleNode, names[i])
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = st
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WriteCert issues a certificate for role/name (valid for ip) and writes
// it and its key to the PKI folder, for a real process.
func (p *PKI) WriteCert(role tlsutil.Role, name, ip string) (cert, key string, err error) {
	return p.ca.IssueFiles(tlsutil.CertOptions{Role: role, Name: name, IPs: []net.IP{net.ParseIP(ip)}}, p.Dir)
}

// RunArgs are the security flags of `dtk-agent run` for role/name on ip:
// a certificate and the gossip key, or --insecure.
func (p *PKI) RunArgs(role tlsutil.Role, name, ip string) ([]string, error) {
	if p == nil {
		return []string{"--insecure"}, nil
	}
	cert, key, err := p.WriteCert(role, name, ip)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", name, err)
	}
	return []string{"--tls-ca", p.CAFile, "--tls-cert", cert, "--tls-key", key, "--encrypt", p.GossipKey}, nil
}

// HTTP is an HTTP client of its own (own connection pool) presenting st's
// certificate, as an agent's or dtkctl's; plain HTTP for a nil PKI.
func (p *PKI) HTTP(st *tlsutil.Store) *http.Client {
	if p == nil {
		return api.DefaultHTTPClient()
	}
	return api.TLSHTTPClient(st.ClientConfig())
}

// Client is an API client over addrs with its own connection pool,
// presenting st's certificate.
func (p *PKI) Client(st *tlsutil.Store, addrs ...string) *api.Client {
	cl := api.NewClient(addrs...)
	cl.HTTP = p.HTTP(st)
	cl.Secure = p.Secure()
	return cl
}

// Operator is an operator (client certificate) API client over addrs.
func (p *PKI) Operator(addrs ...string) *api.Client { return p.Client(p.operatorStore(), addrs...) }

// scheme is the URL scheme of the coordinators' API.
func (p *PKI) scheme() string {
	if p == nil {
		return "http"
	}
	return "https"
}

// operatorStore is the operator certificate (nil for a nil PKI).
func (p *PKI) operatorStore() *tlsutil.Store {
	if p == nil {
		return nil
	}
	return p.operator
}
