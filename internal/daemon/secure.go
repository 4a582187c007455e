package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// TLSFiles are the certificate files of `tls { ... }`.
type TLSFiles struct {
	CA, Cert, Key string
	// CAKey is the CA's key (coordinators, for enrollment).
	CAKey string
}

// ErrSetup marks a start-up refusal caused by the configuration (the
// command exits 2).
var ErrSetup = errors.New("setup")

func setupError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSetup, fmt.Sprintf(format, args...))
}

// Files an enrolled agent keeps in its data dir (the key mode 0600).
func enrolledFiles(dataDir string) (ca, cert, key string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// security is what a process secures itself with.
type security struct {
	store *tlsutil.Store // nil: insecure
	kek   []byte
	caKey []byte
	// gossipKey is the primary key the pool is joined with ("" when a
	// saved keyring or no encryption applies).
	gossipKey string
	// enrolled: the certificate came from enrollment and lives in the data
	// dir, so the agent refreshes and renews it itself.
	enrolled bool
}

// setupSecurity loads or obtains this process's certificate: the files it
// was given, or those enrollment saved in the data dir, or a new
// enrollment. It refuses to run without TLS unless cfg.Insecure.
func setupSecurity(ctx context.Context, cfg *Config, log *slog.Logger) (*security, error) {
	sec := &security{gossipKey: cfg.Encrypt}
	if cfg.Insecure {
		log.Warn("INSECURE MODE: no TLS, no authentication, no gossip encryption. Anyone who reaches this cluster can run code as root on every node. Never use --insecure outside a lab.")
		return sec, nil
	}
	if cfg.KeyringFile != "" {
		kek, err := secret.LoadKEK(cfg.KeyringFile)
		if err != nil {
			return nil, setupError("keyring_file: %v", err)
		}
		sec.kek = kek
	}
	if cfg.TLS.CAKey != "" {
		b, err := os.ReadFile(cfg.TLS.CAKey)
		if err != nil {
			return nil, setupError("tls.ca_key_file: %v", err)
		}
		sec.caKey = b
	}
	switch {
	case cfg.TLS.Cert != "":
		st, err := tlsutil.NewStore(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, setupError("tls: %v", err)
		}
		sec.store = st
	case cfg.Coordinator:
		return nil, setupError("a coordinator needs TLS: set tls { ca_file cert_file key_file } (--tls-ca --tls-cert --tls-key), or --insecure")
	default:
		caFile, certFile, keyFile := enrolledFiles(cfg.DataDir)
		if exists(certFile) && exists(keyFile) && exists(caFile) {
			if cfg.TLS.CA != "" {
				caFile = cfg.TLS.CA // the operator's bundle wins (CA rotation)
			}
			st, err := tlsutil.NewStore(caFile, certFile, keyFile)
			if err != nil {
				return nil, setupError("enrolled certificate in %s: %v (to enroll again, remove %s — the key stays, so the coordinators still know this node — and run with a join token, or have an operator run `dtkctl node remove %s` first)", filepath.Dir(certFile), err, certFile, cfg.Name)
			}
			sec.store, sec.enrolled = st, true
			break
		}
		if cfg.TLS.CA == "" && cfg.CAFingerprint == "" {
			return nil, setupError("this agent has no certificate: enroll it with --join-token TOKEN (dtkctl node token create) and --tls-ca FILE or --ca-fingerprint sha256:..., " +
				"or give it one with --tls-ca --tls-cert --tls-key, or run with --insecure")
		}
		st, err := enroll(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		sec.store, sec.enrolled = st, true
	}
	id := sec.store.Identity()
	switch {
	case cfg.Coordinator && id.Role != tlsutil.RoleServer:
		return nil, setupError("tls.cert_file is a %s certificate; a coordinator needs a server certificate (dtk-agent tls cert create --server --name %s)", id.Role, cfg.Name)
	case !cfg.Coordinator && id.Role == tlsutil.RoleClient:
		return nil, setupError("tls.cert_file is an operator (client) certificate; an agent needs a node certificate (dtk-agent tls cert create --node %s, or enroll)", cfg.Name)
	case id.Name != cfg.Name:
		return nil, setupError("the certificate is for %s but this node is named %q: use --name %s or a certificate for %s", id, cfg.Name, id.Name, cfg.Name)
	}
	return sec, nil
}

// enrollAddrs are the coordinator API addresses enrollment uses.
func enrollAddrs(cfg *Config) []string {
	if len(cfg.EnrollAddrs) > 0 {
		return cfg.EnrollAddrs
	}
	var out []string
	for _, j := range cfg.Join {
		if h, _, err := net.SplitHostPort(j); err == nil {
			out = append(out, net.JoinHostPort(h, fmt.Sprint(DefaultHTTPPort)))
		}
	}
	return out
}

// enroll obtains a node certificate: it makes (or reuses) a key in the
// data dir, sends a signing request with the join token (or without one,
// then waits for an operator's approval), and saves what it gets.
func enroll(ctx context.Context, cfg *Config, log *slog.Logger) (*tlsutil.Store, error) {
	log = log.With("component", "enroll")
	addrs := enrollAddrs(cfg)
	if len(addrs) == 0 {
		return nil, setupError("enrollment needs a coordinator's API address: give --enroll-addr HOST:7070 (or --join)")
	}
	caFile, certFile, keyFile := enrolledFiles(cfg.DataDir)
	var caPEM []byte
	var err error
	if cfg.TLS.CA != "" {
		if caPEM, err = os.ReadFile(cfg.TLS.CA); err != nil {
			return nil, setupError("tls.ca_file: %v", err)
		}
	} else {
		for _, a := range addrs {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			caPEM, err = tlsutil.FetchCA(fctx, a, cfg.CAFingerprint)
			cancel()
			if err == nil {
				log.Info("fetched the cluster CA and checked its fingerprint", "from", a)
				break
			}
		}
		if caPEM == nil {
			return nil, setupError("fetch the cluster CA: %v", err)
		}
	}
	caOnly, err := tlsutil.NewStoreFromPEM(caPEM, nil, nil)
	if err != nil {
		return nil, setupError("cluster CA: %v", err)
	}
	// A restarted agent that is still waiting for approval keeps its key,
	// so that the request the operator sees stays the same.
	var keyPEM []byte
	if b, err := os.ReadFile(keyFile); err == nil {
		keyPEM = b
	} else {
		_, kp, err := tlsutil.NewKey(tlsutil.KeyType("ecdsa"))
		if err != nil {
			return nil, err
		}
		if err := tlsutil.WriteFile(keyFile, kp, 0o600); err != nil {
			return nil, fmt.Errorf("save the node key: %w", err)
		}
		keyPEM = kp
	}
	key, err := tlsutil.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, setupError("%s: %v (remove it to make a new key)", keyFile, err)
	}
	csr, err := tlsutil.CreateCSR(key, cfg.Name)
	if err != nil {
		return nil, err
	}
	client := api.NewClient(addrs...)
	client.Secure = true
	client.HTTP = api.TLSHTTPClient(caOnly.ClientConfig())
	req := api.EnrollRequest{Name: cfg.Name, CSR: string(csr), Token: cfg.JoinToken}
	wait := time.Second
	toldPending := false
	for {
		resp, err := client.Enroll(ctx, req)
		var ae *api.APIError
		switch {
		case err == nil && resp.State == api.PendingApproved:
			if err := tlsutil.WriteFile(caFile, []byte(resp.CAPEM), 0o644); err != nil {
				return nil, err
			}
			if err := tlsutil.WriteFile(certFile, []byte(resp.CertPEM), 0o644); err != nil {
				return nil, err
			}
			st, err := tlsutil.NewStore(caFile, certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("enrolled certificate: %w", err)
			}
			log.Info("enrolled: certificate saved", "node", cfg.Name, "expires", st.Leaf().NotAfter.Format(time.RFC3339))
			return st, nil
		case err == nil:
			if !toldPending {
				log.Warn("waiting for an operator to approve this node: dtkctl node approve "+cfg.Name, "public_key", resp.PublicKey)
				toldPending = true
			}
			wait = 2 * time.Second
		case errors.As(err, &ae) && ae.Code/100 == 4:
			return nil, setupError("enrollment refused: %s", ae.Message)
		default:
			log.Warn("enrollment not done yet, retrying", "err", err)
			wait = min(wait*2, 15*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// fetchGossipKeys asks the coordinators for the gossip keys, over mutual
// TLS with this node's certificate (an agent that has a certificate but no
// key yet: just enrolled, or given files by hand).
func fetchGossipKeys(ctx context.Context, cfg *Config, store *tlsutil.Store, log *slog.Logger) (string, error) {
	addrs := enrollAddrs(cfg)
	if len(addrs) == 0 {
		return "", setupError("the gossip pool is encrypted and this agent has no key: give --encrypt, or --enroll-addr so it can fetch it")
	}
	client := api.NewClient(addrs...)
	client.Secure = true
	client.HTTP = api.TLSHTTPClientFor(store)
	wait := time.Second
	for {
		tr, err := client.NodeTrust(ctx, cfg.Name)
		var ae *api.APIError
		switch {
		case err == nil:
			return tr.GossipPrimary, nil // "": the pool is not encrypted
		case errors.As(err, &ae) && ae.Code/100 == 4:
			return "", setupError("fetch the gossip keys: %s", ae.Message)
		}
		log.Warn("fetch the gossip keys: coordinator not reachable, retrying", "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 15*time.Second)
	}
}

// ReloadTLS re-reads the certificate files (SIGHUP).
func (d *Daemon) ReloadTLS() error {
	if d.sec == nil || d.sec.store == nil {
		return nil
	}
	return d.sec.store.Reload()
}

// TLSEnabled reports whether this process runs with TLS.
func (d *Daemon) TLSEnabled() bool { return d.sec != nil && d.sec.store != nil }

// TLS is the process's certificate store (nil when insecure).
func (d *Daemon) TLS() *tlsutil.Store {
	if d.sec == nil {
		return nil
	}
	return d.sec.store
}
