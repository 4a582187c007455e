package main

import (
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Secure is the default: a coordinator without TLS, a secure coordinator
// without a gossip key and an agent without a certificate all refuse to
// start (exit 2) and say what to give, --insecure among it.
func TestRun_RefusesToStartWithoutSecurity(t *testing.T) {
	empty := writeFile(t, "agent.hcl", "")
	pki := newPKI(t, "c1", net.IPv4(127, 0, 86, 5))
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"coordinator flag, no TLS", []string{"--coordinator"}, []string{"--coordinator: a coordinator needs TLS", "--tls-ca --tls-cert --tls-key", "--insecure"}},
		{"coordinator in the file, no TLS", []string{"--config", writeFile(t, "c.hcl", "coordinator = true\n")}, []string{":1:15: coordinator: a coordinator needs TLS", "--insecure"}},
		{"only part of the TLS files", []string{"--coordinator", "--tls-ca", pki.CAFile, "--tls-cert", pki.CertFile}, []string{"tls.cert_file and tls.key_file go together", "--insecure"}},
		{"TLS but no gossip key", append([]string{"--coordinator", "--name", "c1"}, pki.flags()...), []string{"a secure cluster encrypts its gossip: set encrypt (--encrypt; dtk-agent keygen makes a key)"}},
		{"agent without a certificate", []string{"--join", "127.0.86.5:7946"}, []string{"this agent has no certificate", "--join-token", "--insecure"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"run", "--config", empty, "--data-dir", filepath.Join(t.TempDir(), "data"), "--serf-addr", "127.0.86.5:7946"}
			code, _, errOut := runMain(append(args, tc.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(errOut, "dtk-agent running") {
				t.Errorf("it started:\n%s", errOut)
			}
		})
	}
}

// --insecure starts a coordinator without TLS, saying so loudly, and its
// API answers plain HTTP.
func TestRun_InsecureStartsWithLoudWarning(t *testing.T) {
	p := startAgent(t, "run", "--config", writeFile(t, "agent.hcl", ""), "--coordinator", "--insecure", "--name", "insecure",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--serf-addr", "127.0.86.4:7946",
		"--http-addr", "127.0.86.4:0", "--raft-addr", "127.0.86.4:0")
	waitOutput(t, p.out, "dtk-agent running")
	out := p.out.String()
	if !regexp.MustCompile(`level=WARN msg="INSECURE MODE: no TLS, no authentication, no gossip encryption\. Anyone who reaches this cluster can run code as root on every node\.`).MatchString(out) {
		t.Errorf("no loud warning:\n%s", out)
	}
	m := regexp.MustCompile(`msg="coordinator started" .*\bhttp=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no API address in the output:\n%s", out)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + m[1] + "/v1/status")
	if err != nil {
		t.Fatalf("plain HTTP to the insecure API: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/status: %s", resp.Status)
	}
	p.stop(t)
}
