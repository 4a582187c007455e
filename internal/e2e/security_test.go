package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// certClient is an HTTPS client presenting cert/key (either may be "" for
// none), trusting the test CA.
func certClient(t *testing.T, caFile, cert, key string) *http.Client {
	t.Helper()
	var certPEM, keyPEM []byte
	if cert != "" {
		certPEM, keyPEM = mustRead(t, cert), mustRead(t, key)
	}
	store, err := tlsutil.NewStoreFromPEM(mustRead(t, caFile), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := api.TLSHTTPClient(store.ClientConfig())
	c.Timeout = 10 * time.Second
	return c
}

// rawClient presents an arbitrary certificate (one the cluster's CA did
// not sign, or an expired one) and trusts the test CA.
func rawClient(t *testing.T, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsutil.NewStoreFromPEM(mustRead(t, pki.ca), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.ClientConfig()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	c := api.TLSHTTPClient(cfg)
	c.Timeout = 10 * time.Second
	return c
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call sends a request and returns the status code and the JSON error
// message (or the body).
func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}

// expectRefused asserts a JSON refusal with code whose message contains want.
func expectRefused(t *testing.T, what string, code int, msg string, wantCode int, want string) {
	t.Helper()
	if code != wantCode || !strings.Contains(msg, want) {
		t.Errorf("%s: got %d %q, want %d containing %q", what, code, msg, wantCode, want)
	}
}

func members(t *testing.T, addr string) string {
	out, _, _ := ctl(t, addr, "operator", "members", "--json")
	return out
}

func leaderOf(t *testing.T, addr string) string {
	l, _, err := raftState(addr)
	if err != nil {
		return ""
	}
	return l
}

// A secure three-coordinator cluster: agents enroll (token, CA by
// fingerprint, manual approval), a deploy placed by a token's operator
// label works, and every attack is refused with a reason and changes
// nothing; certificates rotate on SIGHUP and the gossip key rotates with
// the leader kept.
func TestE2E_Secure_EnrollDeployAttacksRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	ips := map[string]string{"c1": "127.0.0.150", "c2": "127.0.0.151", "c3": "127.0.0.152",
		"a1": "127.0.0.153", "a2": "127.0.0.154", "a3": "127.0.0.155", "a4": "127.0.0.156", "rogue": "127.0.0.157", "nokey": "127.0.0.158"}
	coords := map[string]*proc{}
	for _, n := range []string{"c1", "c2", "c3"} {
		var join []string
		for _, o := range []string{"c1", "c2", "c3"} {
			if o != n {
				join = append(join, "--join", ips[o]+":7946")
			}
		}
		// Only c3 is given the CA key: whichever coordinator leads, the
		// key reaches the replicated state and enrollment works.
		cert, key := certFor(t, "server", n, ips[n])
		tlsArgs := []string{"--tls-ca", pki.ca, "--tls-cert", cert, "--tls-key", key, "--keyring-file", pki.kek, "--encrypt", pki.gossipKey}
		if n == "c3" {
			tlsArgs = append(tlsArgs, "--tls-ca-key", pki.caKey)
		}
		coords[n] = startAgent(t, n, append(append([]string{"--coordinator", "--no-agent", "--bootstrap-expect", "3",
			"--data-dir", filepath.Join(root, n), "--serf-addr", ips[n] + ":7946"}, join...), tlsArgs...)...)
	}
	addr := ips["c2"] + ":7070"
	waitFor(t, 60*time.Second, "a leader of three voters", func() bool {
		l, voters, err := raftState(addr)
		return err == nil && l != "" && voters == 3
	})

	// Enrollment: a token for two agents carrying an operator label.
	tokenOut := mustCtl(t, addr, "node", "token", "create", "--uses", "2", "--label", "zone=a", "--ttl", "10m")
	token := strings.TrimSpace(tokenOut)
	if !strings.HasPrefix(token, "dtkjoin-") {
		t.Fatalf("token create printed %q", tokenOut)
	}
	enrollArgs := func(n string, extra ...string) []string {
		ip := ips[n]
		if ip == "" {
			ip = ips["a4"]
		}
		return append([]string{"--data-dir", filepath.Join(root, n), "--serf-addr", ip + ":7946",
			"--join", ips["c1"] + ":7946", "--label", "zone=b"}, extra...)
	}
	// a1 gets the CA as a file, a2 by fingerprint.
	agents := map[string]*proc{
		"a1": startAgent(t, "a1", enrollArgs("a1", "--join-token", token, "--tls-ca", pki.ca)...),
		"a2": startAgent(t, "a2", enrollArgs("a2", "--join-token", token, "--ca-fingerprint", pki.fingerprint)...),
	}
	waitFor(t, 60*time.Second, "a1 and a2 enrolled and registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 2
	})
	// The operator label from the token wins over the node's own zone=b.
	var nodes []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "node", "list", "--json")), &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Labels["zone"] != "a" {
			t.Errorf("node %s has zone=%q, want the token's operator label a", n.Name, n.Labels["zone"])
		}
	}
	for _, n := range []string{"a1", "a2"} {
		if fi, err := os.Stat(filepath.Join(root, n, "tls", "node-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: enrolled key file: %v %v", n, fi, err)
		}
	}

	// A used-up token and a wrong one are refused (exit 2, with the reason).
	used := startAgent(t, "a4", enrollArgs("a4", "--join-token", token, "--tls-ca", pki.ca)...)
	<-used.done
	if code := used.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(used.Output(), "used up") {
		t.Errorf("used-up token: exit %d\n%s", code, used.Output())
	}
	wrong := startAgent(t, "a4", enrollArgs("a4", "--join-token", "dtkjoin-forged", "--tls-ca", pki.ca)...)
	<-wrong.done
	if code := wrong.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(wrong.Output(), "unknown join token") {
		t.Errorf("wrong token: exit %d\n%s", code, wrong.Output())
	}
	// A refused enrollment does not use up a token: a one-use token tried
	// for a name already enrolled with another key still enrolls a4 after.
	one := strings.TrimSpace(mustCtl(t, addr, "node", "token", "create", "--uses", "1"))
	dup := startAgent(t, "a1", enrollArgs("a1-dup", "--join-token", one, "--tls-ca", pki.ca)...)
	<-dup.done
	if code := dup.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(dup.Output(), "already enrolled") {
		t.Errorf("duplicate name: exit %d\n%s", code, dup.Output())
	}
	if out := mustCtl(t, addr, "node", "token", "list", "--json"); !strings.Contains(out, `"uses": 0`) {
		t.Errorf("the refused enrollment used the token:\n%s", out)
	}
	startAgent(t, "a4", enrollArgs("a4", "--join-token", one, "--tls-ca", pki.ca)...)
	waitFor(t, 60*time.Second, "a4 enrolled with the token the refusal left intact", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 3
	})

	// Salt-style approval: a3 has no token and waits as pending.
	a3 := startAgent(t, "a3", enrollArgs("a3", "--tls-ca", pki.ca)...)
	waitFor(t, 30*time.Second, "a3 pending", func() bool {
		out, _, _ := ctl(t, addr, "node", "pending", "--json")
		return strings.Contains(out, `"name": "a3"`) && strings.Contains(out, `"state": "pending"`)
	})
	// Its public key fingerprint is in its log, for the operator to compare.
	pending := mustCtl(t, addr, "node", "pending")
	fp := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(pending)
	if fp == "" || !strings.Contains(a3.Output(), fp) {
		t.Errorf("pending key %q not in a3's log:\n%s", fp, a3.Output())
	}
	mustCtl(t, addr, "node", "approve", "a3")
	waitFor(t, 30*time.Second, "a3 registered after approval", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 4
	})

	// A deploy placed by the operator label works.
	mustCtl(t, addr, "module", "push", "testdata/secure")
	mustCtl(t, addr, "service", "stage", "sec", "--template", "secure/zone")
	mustCtl(t, addr, "service", "deploy", "sec", "--wait", "--timeout", "2m")
	st := getStatus(t, addr, "sec")
	if st.State != "converged" || len(st.Nodes) != 1 {
		t.Fatalf("deploy: %+v", st)
	}
	placed := st.Nodes[0].Name
	other := map[string]string{"a1": "a2", "a2": "a1"}[placed]
	if other == "" {
		t.Fatalf("placed on %q, want a1 or a2 (zone=a)", placed)
	}
	base := func(n string) string { return "https://" + ips[n] + ":7070" }
	nodeCert := func(n string) (string, string) {
		return filepath.Join(root, n, "tls", "node.pem"), filepath.Join(root, n, "tls", "node-key.pem")
	}
	indexBefore := statusIndex(t, addr)

	// --- attacks ---
	// Plain HTTP to the TLS port: a JSON 400 saying to use https.
	code, msg := call(t, &http.Client{Timeout: 5 * time.Second}, "GET", "http://"+ips["c1"]+":7070/v1/status", "")
	expectRefused(t, "plain http", code, msg, 400, "HTTPS only")
	// No certificate at all: 401 naming what is needed.
	anon := certClient(t, pki.ca, "", "")
	code, msg = call(t, anon, "POST", base("c1")+"/v1/services", `{"name":"x","template":"secure/zone"}`)
	expectRefused(t, "no certificate", code, msg, 401, "needs a certificate signed by the cluster CA")
	// A client certificate from another CA.
	otherDir := t.TempDir()
	if _, err := runAgentCLI("tls", "ca", "create", "--out-dir", otherDir); err != nil {
		t.Fatal(err)
	}
	if _, err := runAgentCLI("tls", "cert", "create", "--client", "--name", "mallory", "--out-dir", otherDir,
		"--ca", filepath.Join(otherDir, "dtk-ca.pem"), "--ca-key", filepath.Join(otherDir, "dtk-ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	foreign := rawClient(t, mustRead(t, filepath.Join(otherDir, "client-mallory.pem")), mustRead(t, filepath.Join(otherDir, "client-mallory-key.pem")))
	code, msg = call(t, foreign, "GET", base("c3")+"/v1/services", "")
	expectRefused(t, "foreign CA", code, msg, 401, "not signed by this cluster's CA")
	// dtkctl with that certificate exits 2 with the reason (it checks the
	// pair against the CA before sending anything).
	if _, errOut, c := ctlWith(t, addr, pki.ca, filepath.Join(otherDir, "client-mallory.pem"), filepath.Join(otherDir, "client-mallory-key.pem"), "service", "list"); c != 2 || !strings.Contains(errOut, "not signed by any CA") {
		t.Errorf("dtkctl with a foreign certificate: exit %d %s", c, errOut)
	}
	// An expired operator certificate signed by the right CA.
	ca, err := tlsutil.LoadCA(mustRead(t, pki.ca), mustRead(t, pki.caKey))
	if err != nil {
		t.Fatal(err)
	}
	expCert, expKey, err := ca.Issue(tlsutil.CertOptions{Role: tlsutil.RoleClient, Name: "old", NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	code, msg = call(t, rawClient(t, expCert, expKey), "GET", base("c1")+"/v1/nodes", "")
	expectRefused(t, "expired", code, msg, 401, "expired")

	// A node certificate used for another node's slice, reports,
	// registration, and for operator endpoints: 403 naming what was refused.
	pc, pk := nodeCert(placed)
	nodeCl := certClient(t, pki.ca, pc, pk)
	code, msg = call(t, nodeCl, "GET", base("c1")+"/v1/nodes/"+other+"/plan", "")
	expectRefused(t, "other node's slice", code, msg, 403, fmt.Sprintf("node %q", other))
	report := fmt.Sprintf(`{"reports":[{"id":"%s:999999","node":"%s","step":"x","state":"failed"}]}`, other, other)
	code, msg = call(t, nodeCl, "POST", base("c2")+"/v1/nodes/"+other+"/reports", report)
	expectRefused(t, "other node's reports", code, msg, 403, "may not act as node")
	code, msg = call(t, nodeCl, "PUT", base("c3")+"/v1/nodes/"+other, `{"name":"`+other+`","labels":{"zone":"a"}}`)
	expectRefused(t, "other node's registration", code, msg, 403, "may not act as node")
	code, msg = call(t, nodeCl, "POST", base("c1")+"/v1/services/sec/deploy", "")
	expectRefused(t, "node deploying", code, msg, 403, "needs an operator")
	code, msg = call(t, nodeCl, "GET", base("c1")+"/v1/operator/snapshot", "")
	expectRefused(t, "node taking a snapshot", code, msg, 403, "needs an operator")
	// Its own slice is fine; a blob its plan does not need is not.
	if code, msg = call(t, nodeCl, "GET", base("c1")+"/v1/nodes/"+placed+"/plan", ""); code != 200 {
		t.Errorf("own slice: %d %s", code, msg)
	}
	oc, ok := nodeCert(other)
	code, msg = call(t, certClient(t, pki.ca, oc, ok), "GET", base("c1")+"/v1/blobs/"+moduleDigest(t, addr), "")
	expectRefused(t, "blob not in the plan", code, msg, 403, "its plan does not use it")
	// A node cannot change the labels an operator set, nor rename itself.
	mustCtl(t, addr, "node", "label", placed, "tier=gold")
	code, msg = call(t, nodeCl, "PUT", base("c1")+"/v1/nodes/"+placed, `{"name":"`+placed+`","labels":{"tier":"bronze","zone":"b"}}`)
	if code != 200 {
		t.Errorf("own registration: %d %s", code, msg)
	}
	lbl := nodeLabels(t, addr, placed)
	if lbl["tier"] != "gold" || lbl["zone"] != "a" {
		t.Errorf("operator labels overridden by the node: %v", lbl)
	}
	code, msg = call(t, nodeCl, "PUT", base("c1")+"/v1/nodes/"+placed, `{"name":"renamed"}`)
	expectRefused(t, "rename", code, msg, 400, "differs")
	// Nothing the attacks tried changed the service.
	if st2 := getStatus(t, addr, "sec"); st2.State != "converged" || st2.Generation != st.Generation {
		t.Errorf("service changed by refused requests: %+v", st2)
	}
	if idx := statusIndex(t, addr); idx < indexBefore {
		t.Errorf("index went back: %d < %d", idx, indexBefore)
	}

	// Revocation: removing a3 makes its certificate stop working at once.
	c3cert, c3key := nodeCert("a3")
	a3cl := certClient(t, pki.ca, c3cert, c3key)
	if code, msg = call(t, a3cl, "GET", base("c1")+"/v1/nodes/a3/plan", ""); code != 200 {
		t.Fatalf("a3 before removal: %d %s", code, msg)
	}
	mustCtl(t, addr, "node", "remove", "a3")
	for _, c := range []string{"c1", "c2", "c3"} {
		waitFor(t, 10*time.Second, "a3 refused by "+c, func() bool {
			code, msg = call(t, a3cl, "GET", base(c)+"/v1/nodes/a3/plan", "")
			return code == 401 && strings.Contains(msg, "revoked")
		})
	}
	a3.stop(syscall.SIGTERM)

	// Gossip members with no key or the wrong key cannot join the pool.
	rogueKey, err := runAgentCLI("keygen")
	if err != nil {
		t.Fatal(err)
	}
	rc, rk := certFor(t, "node", "rogue", ips["rogue"])
	rogue := startAgent(t, "rogue", "--data-dir", filepath.Join(root, "rogue"), "--serf-addr", ips["rogue"]+":7946",
		"--join", ips["c1"]+":7946", "--tls-ca", pki.ca, "--tls-cert", rc, "--tls-key", rk, "--encrypt", strings.TrimSpace(rogueKey))
	nokey := startAgent(t, "nokey", "--data-dir", filepath.Join(root, "nokey"), "--serf-addr", ips["nokey"]+":7946",
		"--join", ips["c1"]+":7946", "--insecure")
	waitFor(t, 30*time.Second, "the refused joins in the logs", func() bool {
		return strings.Contains(coords["c1"].Output(), "gossip traffic refused") &&
			strings.Contains(rogue.Output(), "join failed") && strings.Contains(nokey.Output(), "join failed")
	})
	// The one bounded window in this test: a member that cannot decrypt
	// must never appear in the pool while it keeps trying.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if m := members(t, addr); strings.Contains(m, `"rogue"`) || strings.Contains(m, `"nokey"`) {
			t.Fatalf("a member without the gossip key joined:\n%s", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rogue.stop(syscall.SIGTERM)
	nokey.stop(syscall.SIGTERM)

	// Certificate rotation: c1 keeps serving with a new certificate after
	// SIGHUP; a broken file is refused and the old one kept.
	c1cert, c1key := certFor(t, "server", "c1", ips["c1"])
	oldSerial := servedSerial(t, ips["c1"]+":7070")
	newDir := t.TempDir()
	if _, err := runAgentCLI("tls", "cert", "create", "--server", "--name", "c1", "--ip", ips["c1"], "--out-dir", newDir, "--ca", pki.ca, "--ca-key", pki.caKey); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(newDir, "server-c1.pem"), c1cert)
	copyFile(t, filepath.Join(newDir, "server-c1-key.pem"), c1key)
	coords["c1"].cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "c1 serving the new certificate", func() bool {
		s := servedSerial(t, ips["c1"]+":7070")
		return s != "" && s != oldSerial
	})
	mustCtl(t, ips["c1"]+":7070", "service", "set", "sec", "tag=v2")
	mustCtl(t, ips["c1"]+":7070", "service", "deploy", "sec", "--wait", "--timeout", "2m")

	// Gossip key rotation with the leader kept throughout, while the agent
	// not running the service is stopped: it misses the rotation.
	agents[other].stop(syscall.SIGTERM)
	waitFor(t, 30*time.Second, other+" gone from the pool", func() bool { return memberStatus(t, addr, other) != "alive" })
	leader := leaderOf(t, addr)
	newKey, err := runAgentCLI("keygen")
	if err != nil {
		t.Fatal(err)
	}
	newKey = strings.TrimSpace(newKey)
	mustCtl(t, addr, "operator", "keyring", "install", newKey)
	mustCtl(t, addr, "operator", "keyring", "use", newKey)
	mustCtl(t, addr, "operator", "keyring", "remove", pki.gossipKey)
	out := mustCtl(t, addr, "operator", "keyring", "list", "--json")
	var ks api.KeyringStatus
	if err := json.Unmarshal([]byte(out), &ks); err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys) != 1 || ks.Keys[newKey] != ks.NumNodes || ks.PrimaryKeys[newKey] != ks.NumNodes {
		t.Errorf("after rotation: %+v", ks)
	}
	if l := leaderOf(t, addr); l != leader {
		t.Errorf("leader changed during the gossip key rotation: %s → %s", leader, l)
	}
	if m := members(t, addr); strings.Count(m, `"status": "alive"`) != 5 {
		t.Errorf("members after rotation:\n%s", m)
	}
	// The agent that missed it comes back with only the old key saved: it
	// fetches the current keys over mutual TLS and rejoins.
	startAgent(t, other, enrollArgs(other, "--tls-ca", pki.ca)...) // its enrolled certificate, no gossip key given
	waitFor(t, 60*time.Second, other+" back in the pool with the new key", func() bool {
		return memberStatus(t, addr, other) == "alive" && strings.Count(members(t, addr), `"status": "alive"`) == 6
	})
	// And the cluster still deploys.
	mustCtl(t, addr, "service", "set", "sec", "tag=v3")
	mustCtl(t, addr, "service", "deploy", "sec", "--wait", "--timeout", "2m")
	// The cluster CA key is never in clear in any coordinator's Raft store.
	caKeyPEM := mustRead(t, pki.caKey)
	keyBody := strings.Split(string(caKeyPEM), "\n")[1]
	for _, n := range []string{"c1", "c2", "c3"} {
		filepath.Walk(filepath.Join(root, n), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(keyBody)) || bytes.Contains(b, []byte(newKey)) {
					t.Errorf("%s holds a secret in clear", p)
				}
			}
			return nil
		})
	}
}

func statusIndex(t *testing.T, addr string) uint64 {
	resp, err := opClient.Get("https://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st api.StatusResponse
	json.NewDecoder(resp.Body).Decode(&st)
	return st.Index
}

func moduleDigest(t *testing.T, addr string) string {
	var mods []struct {
		Digest string `json:"digest"`
	}
	json.Unmarshal([]byte(mustCtl(t, addr, "module", "list", "--json")), &mods)
	if len(mods) == 0 {
		t.Fatal("no module")
	}
	return mods[0].Digest
}

func nodeLabels(t *testing.T, addr, name string) map[string]string {
	var nodes []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	json.Unmarshal([]byte(mustCtl(t, addr, "node", "list", "--json")), &nodes)
	for _, n := range nodes {
		if n.Name == name {
			return n.Labels
		}
	}
	return nil
}

// servedSerial is the serial of the certificate a coordinator presents.
func servedSerial(t *testing.T, addr string) string {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return ""
	}
	defer conn.Close()
	return tlsutil.SerialHex(conn.ConnectionState().PeerCertificates[0])
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to+".tmp", mustRead(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

// ctlWith runs dtkctl with explicit TLS files.
func ctlWith(t *testing.T, addr, ca, cert, key string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	flags := []string{"--addr", addr}
	if ca != "" {
		flags = append(flags, "--ca-file", ca, "--client-cert", cert, "--client-key", key)
	}
	cmd := exec.Command(bin.ctl, append(flags, args...)...)
	cmd.Env = append(os.Environ(), "DTK_CACERT=", "DTK_CLIENT_CERT=", "DTK_CLIENT_KEY=")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// The explicit insecure mode still works end to end, says so loudly, and
// a secure client cannot be fooled into using it.
func TestE2E_Insecure_WorksAndWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, agentIP = "127.0.0.160", "127.0.0.161"
	addr := coordIP + ":7070"
	// Without TLS and without --insecure a coordinator refuses to start.
	refused := startAgent(t, "c", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "refused"),
		"--serf-addr", coordIP+":7946", "--tls-ca=") // --tls-ca= keeps the harness from adding TLS
	<-refused.done
	if code := refused.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(refused.Output(), "--insecure") {
		t.Fatalf("coordinator without TLS: exit %d\n%s", code, refused.Output())
	}
	coord := startAgent(t, "c", "--coordinator", "--no-agent", "--insecure", "--data-dir", filepath.Join(root, "c"), "--serf-addr", coordIP+":7946")
	agent := startAgent(t, "n", "--insecure", "--data-dir", filepath.Join(root, "n"), "--serf-addr", agentIP+":7946", "--join", coordIP+":7946", "--label", "zone=a")
	for _, p := range []*proc{coord, agent} {
		waitFor(t, 20*time.Second, p.name+"'s warning", func() bool { return strings.Contains(p.Output(), "INSECURE") })
	}
	plain := func(args ...string) string {
		t.Helper()
		out, errOut, code := ctlWith(t, addr, "", "", "", args...)
		if code != 0 {
			t.Fatalf("dtkctl %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	waitFor(t, 30*time.Second, "the node registered", func() bool {
		out, _, code := ctlWith(t, addr, "", "", "", "node", "list", "--json")
		return code == 0 && strings.Contains(out, `"status": "up"`)
	})
	plain("module", "push", "testdata/secure")
	plain("service", "stage", "sec", "--template", "secure/zone")
	plain("service", "deploy", "sec", "--wait", "--timeout", "2m")
	if out := plain("service", "status", "sec", "--json"); !strings.Contains(out, `"state": "converged"`) {
		t.Errorf("insecure deploy did not converge:\n%s", out)
	}
	// dtkctl given a CA never falls back to plain http.
	if _, errOut, code := ctlWith(t, "http://"+addr, pki.ca, pki.clientCert, pki.clientKey, "node", "list"); code != 2 || !strings.Contains(errOut, "use https://") {
		t.Errorf("CA with an http:// address: exit %d %s", code, errOut)
	}
	if _, errOut, code := ctlWith(t, addr, pki.ca, pki.clientCert, pki.clientKey, "node", "list"); code == 0 {
		t.Errorf("a secure dtkctl talked to an insecure coordinator: %s", errOut)
	}
}

// An enrolled agent renews its certificate (same key) before it expires,
// keeps working across the renewal, and a removed node cannot renew.
func TestE2E_Secure_AgentRenewsItsCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, agentIP = "127.0.0.165", "127.0.0.166"
	addr := coordIP + ":7070"
	startAgent(t, "c", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "c"), "--serf-addr", coordIP+":7946",
		"--node-cert-ttl", "30s")
	waitLeader(t, addr)
	token := strings.TrimSpace(mustCtl(t, addr, "node", "token", "create"))
	agent := startAgent(t, "n", "--data-dir", filepath.Join(root, "n"), "--serf-addr", agentIP+":7946", "--join", coordIP+":7946",
		"--join-token", token, "--tls-ca", pki.ca, "--label", "zone=a")
	certFile := filepath.Join(root, "n", "tls", "node.pem")
	waitFor(t, 30*time.Second, "the agent enrolled", func() bool { _, err := os.Stat(certFile); return err == nil })
	first := readCert(t, certFile)
	if life := first.NotAfter.Sub(time.Now()); life > 31*time.Second || life < 20*time.Second {
		t.Fatalf("enrolled certificate lives %s more, want about 30s", life)
	}
	waitFor(t, 40*time.Second, "the certificate renewed", func() bool {
		c := readCert(t, certFile)
		return c != nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !strings.Contains(agent.Output(), "node certificate renewed") {
		t.Errorf("no renewal in the agent's log")
	}
	// It keeps working with the new certificate: a deploy converges.
	mustCtl(t, addr, "module", "push", "testdata/secure")
	mustCtl(t, addr, "service", "stage", "sec", "--template", "secure/zone")
	mustCtl(t, addr, "service", "deploy", "sec", "--wait", "--timeout", "2m")
	// Past the first certificate's expiry it still converges (it renewed
	// again meanwhile, or would have been locked out).
	waitFor(t, 40*time.Second, "the first certificate expired", func() bool { return time.Now().After(first.NotAfter) })
	mustCtl(t, addr, "service", "set", "sec", "tag=v2")
	mustCtl(t, addr, "service", "deploy", "sec", "--wait", "--timeout", "2m")
}

func readCert(t *testing.T, path string) *x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	certs, err := tlsutil.ParseCertsPEM(b)
	if err != nil {
		return nil
	}
	return certs[0]
}

// memberStatus is a pool member's status ("" when not listed).
func memberStatus(t *testing.T, addr, name string) string {
	var ms []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	json.Unmarshal([]byte(members(t, addr)), &ms)
	for _, m := range ms {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}
