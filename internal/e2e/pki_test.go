package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// The end-to-end tests run the secure configuration: one cluster CA for the
// whole package, made with the real `dtk-agent tls` and `keygen` commands;
// every coordinator gets a server certificate, every agent a node
// certificate, dtkctl an operator certificate, and gossip is encrypted.
var pki struct {
	dir, ca, caKey, clientCert, clientKey, gossipKey, kek string
	fingerprint                                           string
}

// opClient is an operator's HTTPS client for raw API calls.
var opClient *http.Client

func runAgentCLI(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin.agent, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("dtk-agent %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func setupPKI(dir string) error {
	pki.dir = filepath.Join(dir, "pki")
	out, err := runAgentCLI("tls", "ca", "create", "--out-dir", pki.dir)
	if err != nil {
		return err
	}
	if m := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(out); m != "" {
		pki.fingerprint = m
	} else {
		return fmt.Errorf("no fingerprint in %q", out)
	}
	pki.ca, pki.caKey = filepath.Join(pki.dir, "dtk-ca.pem"), filepath.Join(pki.dir, "dtk-ca-key.pem")
	if _, err := runAgentCLI("tls", "cert", "create", "--client", "--out-dir", pki.dir, "--ca", pki.ca, "--ca-key", pki.caKey); err != nil {
		return err
	}
	pki.clientCert, pki.clientKey = filepath.Join(pki.dir, "client-operator.pem"), filepath.Join(pki.dir, "client-operator-key.pem")
	key, err := runAgentCLI("keygen")
	if err != nil {
		return err
	}
	pki.gossipKey = strings.TrimSpace(key)
	kek, err := runAgentCLI("keygen")
	if err != nil {
		return err
	}
	pki.kek = filepath.Join(pki.dir, "keyring.key")
	if err := os.WriteFile(pki.kek, []byte(kek), 0o600); err != nil {
		return err
	}
	store, err := tlsutil.NewStore(pki.ca, pki.clientCert, pki.clientKey)
	if err != nil {
		return err
	}
	opClient = api.TLSHTTPClient(store.ClientConfig())
	opClient.Timeout = 10 * time.Second
	return nil
}

var certMu sync.Mutex

// certFor makes (once per test) a certificate for role/name with ip in
// its addresses, using the real CLI.
func certFor(t *testing.T, role, name, ip string) (cert, key string) {
	t.Helper()
	certMu.Lock()
	defer certMu.Unlock()
	dir := filepath.Join(pki.dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	cert, key = filepath.Join(dir, role+"-"+name+".pem"), filepath.Join(dir, role+"-"+name+"-key.pem")
	if _, err := os.Stat(cert); err == nil {
		return cert, key
	}
	args := []string{"tls", "cert", "create", "--out-dir", dir, "--ca", pki.ca, "--ca-key", pki.caKey}
	switch role {
	case "server":
		args = append(args, "--server", "--name", name, "--ip", ip)
	case "node":
		args = append(args, "--node", name)
	case "client":
		args = append(args, "--client", "--name", name)
	}
	if _, err := runAgentCLI(args...); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// flagValue finds --flag VALUE or --flag=VALUE in args.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// secureArgs adds TLS and gossip encryption to `dtk-agent run` args,
// unless the test sets up security itself (insecure mode, enrollment, its
// own files).
func secureArgs(t *testing.T, name string, args []string) []string {
	for _, own := range []string{"--insecure", "--join-token", "--tls-cert", "--tls-ca", "--ca-fingerprint"} {
		if slices.ContainsFunc(args, func(a string) bool { return a == own || strings.HasPrefix(a, own+"=") }) {
			return args
		}
	}
	ip := "127.0.0.1"
	if sa := flagValue(args, "--serf-addr"); sa != "" {
		ip, _, _ = strings.Cut(sa, ":")
	}
	out := slices.Clone(args)
	if slices.Contains(args, "--coordinator") {
		cert, key := certFor(t, "server", name, ip)
		out = append(out, "--tls-ca", pki.ca, "--tls-cert", cert, "--tls-key", key, "--tls-ca-key", pki.caKey, "--keyring-file", pki.kek)
	} else {
		cert, key := certFor(t, "node", name, ip)
		out = append(out, "--tls-ca", pki.ca, "--tls-cert", cert, "--tls-key", key)
	}
	return append(out, "--encrypt", pki.gossipKey)
}

// ctlTLSArgs points dtkctl at addr as an operator.
func ctlTLSArgs(addr string) []string {
	return []string{"--addr", addr, "--ca-file", pki.ca, "--client-cert", pki.clientCert, "--client-key", pki.clientKey}
}
