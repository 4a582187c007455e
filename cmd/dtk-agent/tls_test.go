package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
)

// newTestCA runs `tls ca create` in a fresh folder and returns the folder.
func newTestCA(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	code, out, errOut := runMain(append([]string{"tls", "ca", "create", "--out-dir", dir}, extra...)...)
	if code != 0 {
		t.Fatalf("ca create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	return dir
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestTLSCACreate(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runMain("tls", "ca", "create", "--out-dir", dir, "--common-name", "acme CA", "--days", "30")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	certPath, keyPath := filepath.Join(dir, "dtk-ca.pem"), filepath.Join(dir, "dtk-ca-key.pem")
	if m := mode(t, certPath); m != 0o644 {
		t.Errorf("%s mode %v", certPath, m)
	}
	if m := mode(t, keyPath); m != 0o600 {
		t.Errorf("%s mode %v", keyPath, m)
	}
	certPEM, _ := os.ReadFile(certPath)
	keyPEM, _ := os.ReadFile(keyPath)
	ca, err := tlsutil.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "acme CA" {
		t.Errorf("CN %q", ca.Cert.Subject.CommonName)
	}
	if life := time.Until(ca.Cert.NotAfter); life < 29*24*time.Hour || life > 30*24*time.Hour {
		t.Errorf("lifetime %s, want 30 days", life)
	}
	for _, want := range []string{"wrote " + certPath, "wrote " + keyPath, "fingerprint: " + tlsutil.Fingerprint(ca.Cert) + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The fingerprint command agrees.
	code, fp, _ := runMain("tls", "ca", "fingerprint", certPath)
	if code != 0 || fp != tlsutil.Fingerprint(ca.Cert)+"\n" {
		t.Errorf("fingerprint: exit %d, %q", code, fp)
	}
}

func TestTLSCACreate_RefusesOverwrite(t *testing.T) {
	dir := newTestCA(t)
	before, _ := os.ReadFile(filepath.Join(dir, "dtk-ca-key.pem"))
	code, _, errOut := runMain("tls", "ca", "create", "--out-dir", dir)
	if code != 2 || !strings.Contains(errOut, "already exists; pass --force") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "dtk-ca-key.pem")); string(after) != string(before) {
		t.Fatal("the CA key was overwritten")
	}
	if code, _, errOut := runMain("tls", "ca", "create", "--out-dir", dir, "--force", "--key-type", "ed25519"); code != 0 {
		t.Fatalf("--force: exit %d, %s", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "dtk-ca-key.pem")); string(after) == string(before) {
		t.Error("--force did not replace the key")
	}
}

func TestTLSCACreate_BadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--key-type", "rsa"},
		{"--days", "0"},
		{"--days", "many"},
	} {
		code, _, errOut := runMain(append([]string{"tls", "ca", "create", "--out-dir", dir}, args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if code, _, _ := runMain("tls", "ca", "fingerprint", filepath.Join(dir, "nope.pem")); code != 2 {
		t.Errorf("fingerprint of a missing file: exit %d", code)
	}
}

func TestTLSCertCreate(t *testing.T) {
	dir := newTestCA(t)
	caPath, keyPath := filepath.Join(dir, "dtk-ca.pem"), filepath.Join(dir, "dtk-ca-key.pem")
	caPEM, _ := os.ReadFile(caPath)
	common := []string{"--ca", caPath, "--ca-key", keyPath, "--out-dir", dir}

	cases := []struct {
		args  []string
		id    string
		file  string
		usage x509.ExtKeyUsage
		dns   []string
		ips   []string
	}{
		{[]string{"--server", "--name", "c1", "--dns", "c1.example", "--ip", "10.0.0.5"}, "server/c1", "server-c1", x509.ExtKeyUsageServerAuth,
			[]string{"c1.example", "localhost"}, []string{"10.0.0.5", "127.0.0.1"}},
		{[]string{"--client"}, "client/operator", "client-operator", x509.ExtKeyUsageClientAuth, nil, nil},
		{[]string{"--client", "--name", "ci"}, "client/ci", "client-ci", x509.ExtKeyUsageClientAuth, nil, nil},
		{[]string{"--node", "web-1", "--days", "10"}, "node/web-1", "node-web-1", x509.ExtKeyUsageClientAuth, nil, nil},
	}
	for _, tc := range cases {
		code, out, errOut := runMain(append(append([]string{"tls", "cert", "create"}, tc.args...), common...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tc.args, code, errOut)
		}
		certPath, keyFile := filepath.Join(dir, tc.file+".pem"), filepath.Join(dir, tc.file+"-key.pem")
		if m := mode(t, certPath); m != 0o644 {
			t.Errorf("%s mode %v", certPath, m)
		}
		if m := mode(t, keyFile); m != 0o600 {
			t.Errorf("%s mode %v", keyFile, m)
		}
		for _, want := range []string{"wrote " + certPath, "wrote " + keyFile, "identity: " + tc.id, "expires: "} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, want, out)
			}
		}
		// The files make a store (key matches, signed by the CA) and
		// the certificate is good for its use.
		s, err := tlsutil.NewStore(caPath, certPath, keyFile)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if s.Identity().String() != tc.id {
			t.Errorf("%v: identity %v", tc.args, s.Identity())
		}
		if _, err := s.VerifyPeer([]*x509.Certificate{s.Leaf()}, tc.usage); err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
		leaf := s.Leaf()
		if !slices.Equal(leaf.DNSNames, tc.dns) {
			t.Errorf("%v: DNS %v, want %v", tc.args, leaf.DNSNames, tc.dns)
		}
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		if !slices.Equal(ips, tc.ips) {
			t.Errorf("%v: IPs %v, want %v", tc.args, ips, tc.ips)
		}
		if string(s.CAPEM()) != string(caPEM) {
			t.Errorf("%v: CA differs", tc.args)
		}
	}
	node, _ := tlsutil.NewStore(caPath, filepath.Join(dir, "node-web-1.pem"), filepath.Join(dir, "node-web-1-key.pem"))
	if life := node.Leaf().NotAfter.Sub(node.Leaf().NotBefore); life != 10*24*time.Hour {
		t.Errorf("--days 10: lifetime %s", life)
	}
	if _, err := node.VerifyPeer([]*x509.Certificate{node.Leaf()}, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("a node certificate is good for server authentication")
	}
}

func TestTLSCertCreate_RefusesOverwrite(t *testing.T) {
	dir := newTestCA(t)
	args := []string{"tls", "cert", "create", "--node", "web-1", "--ca", filepath.Join(dir, "dtk-ca.pem"), "--ca-key", filepath.Join(dir, "dtk-ca-key.pem"), "--out-dir", dir}
	if code, _, errOut := runMain(args...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, _, errOut := runMain(args...)
	if code != 2 || !strings.Contains(errOut, "node-web-1") || !strings.Contains(errOut, "--force") {
		t.Fatalf("second run: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runMain(append(args, "--force")...); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
}

func TestTLSCertCreate_BadFlags(t *testing.T) {
	dir := newTestCA(t)
	common := []string{"--ca", filepath.Join(dir, "dtk-ca.pem"), "--ca-key", filepath.Join(dir, "dtk-ca-key.pem"), "--out-dir", dir}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{nil, "exactly one of --server, --client or --node"},
		{[]string{"--server", "--client", "--name", "x"}, "exactly one"},
		{[]string{"--server", "--node", "web-1"}, "exactly one"},
		{[]string{"--server"}, "--server needs --name"},
		{[]string{"--node", "web-1", "--name", "x"}, "--name does not go with --node"},
		{[]string{"--node", "Web 1"}, "invalid name"},
		{[]string{"--node", ""}, "--node needs the node's name"},
		{[]string{"--client", "--ip", "not-an-ip"}, `"not-an-ip" is not an IP address`},
		{[]string{"--client", "--days=-1"}, "positive number of days"},
		{[]string{"--client", "--key-type", "dsa"}, "key-type"},
		{[]string{"--client", "--ca", filepath.Join(dir, "missing.pem")}, "dtk-agent tls ca create"},
		{[]string{"--client", "--ca-key", filepath.Join(dir, "dtk-ca.pem")}, "CA key"},
	} {
		// The flags under test come last: they override common.
		code, _, errOut := runMain(append(append([]string{"tls", "cert", "create"}, common...), tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errOut, tc.says)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files written by refused commands: %v", entries)
	}
}

// The files of `tls cert create` make a working mutual TLS pair.
func TestTLSCertCreate_Handshake(t *testing.T) {
	dir := newTestCA(t, "--key-type", "ed25519")
	common := []string{"--ca", filepath.Join(dir, "dtk-ca.pem"), "--ca-key", filepath.Join(dir, "dtk-ca-key.pem"), "--out-dir", dir}
	for _, args := range [][]string{{"--server", "--name", "c1"}, {"--client"}} {
		if code, _, errOut := runMain(append(append([]string{"tls", "cert", "create"}, args...), common...)...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	load := func(base string) *tlsutil.Store {
		s, err := tlsutil.NewStore(filepath.Join(dir, "dtk-ca.pem"), filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	server, client := load("server-c1"), load("client-operator")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	idc := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			idc <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			idc <- err.Error()
			return
		}
		id, err := server.VerifyPeer(tc.ConnectionState().PeerCertificates, x509.ExtKeyUsageClientAuth)
		if err != nil {
			idc <- err.Error()
			return
		}
		idc <- id.String()
		tc.Write([]byte("x"))
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if id := <-idc; id != "client/operator" {
		t.Errorf("server saw %q", id)
	}
}
