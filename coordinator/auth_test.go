package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// testPKI is a CA and certificates made in-process.
type testPKI struct {
	t     *testing.T
	dir   string
	ca    *tlsutil.CA
	caPEM []byte
	caKey []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca, caPEM: certPEM, caKey: keyPEM}
}

func (p *testPKI) store(role tlsutil.Role, name string) *tlsutil.Store {
	p.t.Helper()
	c, k, err := p.ca.Issue(tlsutil.CertOptions{Role: role, Name: name, DNSNames: []string{"localhost"}})
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := tlsutil.NewStoreFromPEM(p.caPEM, c, k)
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

func (p *testPKI) client(role tlsutil.Role, name string) *http.Client {
	c := api.TLSHTTPClient(p.store(role, name).ClientConfig())
	c.Timeout = 10 * time.Second
	return c
}

func (p *testPKI) anonymous() *http.Client {
	st, err := tlsutil.NewStoreFromPEM(p.caPEM, nil, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	c := api.TLSHTTPClient(st.ClientConfig())
	c.Timeout = 10 * time.Second
	return c
}

// startSecureServer runs a single-node coordinator over mutual TLS that
// holds the cluster CA for enrollment.
func startSecureServer(t *testing.T, p *testPKI) *Server {
	return startSecureServerWith(t, p, nil)
}

func startSecureServerWith(t *testing.T, p *testPKI, edit func(*Config)) *Server {
	t.Helper()
	kek, _ := secret.GenerateKey()
	kekBytes, _ := secret.ParseKey(kek)
	cfg := Config{Name: "c1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Fast: true,
		TLS: p.store(tlsutil.RoleServer, "c1"), KEK: kekBytes, CAKeyPEM: p.caKey}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	s.storeCA()
	return s
}

func send(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.APIError
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(b)
}

// fill makes a concrete path of a route pattern, naming node.
func fill(pattern, node string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return "GET", "/v1/nothing-here"
	}
	r := strings.NewReplacer("{name}", node, "{version}", "1.0.0", "{digest}", "sha256:"+strings.Repeat("0", 64), "{id}", "x", "{op}", "install")
	path = r.Replace(path)
	if method == "GET" {
		path += "?wait=10ms" // blocking queries answer at once
	}
	return method, path
}

// Every route, tried by every kind of caller: anonymous callers get 401,
// a node certificate gets 403 on everything but its own node's routes,
// an operator gets 403 only where a node must speak for itself.
func TestAuth_EveryRoute_EveryCaller(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	base := "https://" + s.HTTPAddr()
	anon, node1, operator := p.anonymous(), p.client(tlsutil.RoleNode, "n1"), p.client(tlsutil.RoleClient, "ops")
	if len(s.routes) < 40 {
		t.Fatalf("only %d routes recorded", len(s.routes))
	}
	refused := func(code int) bool { return code == 401 || code == 403 }
	for _, rt := range s.routes {
		if rt.access == accessPublic {
			continue
		}
		method, other := fill(rt.pattern, "n2")
		_, own := fill(rt.pattern, "n1")
		body := ""
		if method == "POST" || method == "PUT" {
			body = "{}"
		}
		if code, msg := send(t, anon, method, base+other, body); code != 401 || !strings.Contains(msg, "certificate") {
			t.Errorf("anonymous %s %s: %d %q, want 401", method, other, code, msg)
		}
		code, msg := send(t, node1, method, base+other, body)
		if rt.access == accessAny {
			if refused(code) {
				t.Errorf("node %s %s: %d %q", method, other, code, msg)
			}
		} else if code != 403 || !strings.HasPrefix(msg, "node/n1 ") {
			t.Errorf("node n1 %s %s: %d %q, want 403 naming the caller", method, other, code, msg)
		}
		if rt.access == accessNodeRead || rt.access == accessNodeWrite {
			if code, msg := send(t, node1, method, base+own, body); refused(code) {
				t.Errorf("node n1 on its own %s %s: %d %q", method, own, code, msg)
			}
		}
		if rt.pattern == "POST /v1/agent/leave" || strings.Contains(rt.pattern, "snapshot") ||
			rt.pattern == "GET /debug/pprof/profile" || rt.pattern == "GET /debug/pprof/trace" {
			continue // an operator may; not worth doing here (profiles run for seconds)
		}
		code, msg = send(t, operator, method, base+other, body)
		if rt.access == accessNodeWrite || rt.access == accessServer {
			if code != 403 {
				t.Errorf("operator %s %s: %d %q, want 403 (only the node speaks for itself)", method, other, code, msg)
			}
		} else if refused(code) {
			t.Errorf("operator %s %s: %d %q", method, other, code, msg)
		}
	}
	// Only coordinators may name another caller.
	if code, msg := send(t, operator, "GET", base+"/v1/nodes", "", callerHeader, "server/c9"); code != 403 || !strings.Contains(msg, callerHeader) {
		t.Errorf("forged caller header: %d %q", code, msg)
	}
	coord := p.client(tlsutil.RoleServer, "c2")
	if code, msg := send(t, coord, "POST", base+"/v1/nodes/n2/reports", `{"reports":[]}`, callerHeader, "node/n1"); code != 403 || !strings.HasPrefix(msg, "node/n1 ") {
		t.Errorf("a coordinator forwarding for n1 to n2's reports: %d %q", code, msg)
	}
	// Plain HTTP on the TLS port: a JSON 400.
	if code, msg := send(t, &http.Client{Timeout: 5 * time.Second}, "GET", "http://"+s.HTTPAddr()+"/v1/status", ""); code != 400 || !strings.Contains(msg, "HTTPS only") {
		t.Errorf("plain http: %d %q", code, msg)
	}
}

func enrollReq(t *testing.T, name, token string) (string, string) {
	t.Helper()
	key, _, err := tlsutil.NewKey(tlsutil.KeyType("ecdsa"))
	if err != nil {
		t.Fatal(err)
	}
	csr, err := tlsutil.CreateCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(api.EnrollRequest{Name: name, CSR: string(csr), Token: token})
	return string(b), string(csr)
}

func TestEnroll_TokenUsesPendingApproveRejectRemove(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	base := "https://" + s.HTTPAddr()
	anon, operator := p.anonymous(), p.client(tlsutil.RoleClient, "ops")
	code, body := send(t, operator, "POST", base+"/v1/tokens", `{"max_uses":1,"ttl":"1h","labels":{"zone":"a"}}`)
	var tok api.TokenResponse
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Secret == "" {
		t.Fatalf("create token: %d %s", code, body)
	}
	if strings.Contains(stateJSON(s), tok.Secret) {
		t.Fatal("the token's secret is in the state")
	}
	// A bad CSR is refused and does not use the token.
	bad, _ := json.Marshal(api.EnrollRequest{Name: "n1", CSR: "junk", Token: tok.Secret})
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", string(bad)); code != 400 {
		t.Errorf("bad csr: %d %s", code, msg)
	}
	req, _ := enrollReq(t, "n1", tok.Secret)
	code, body = send(t, anon, "POST", base+"/v1/enroll", req)
	var er api.EnrollResponse
	if code != 200 || json.Unmarshal([]byte(body), &er) != nil || er.CertPEM == "" {
		t.Fatalf("enroll: %d %s", code, body)
	}
	certs, err := tlsutil.ParseCertsPEM([]byte(er.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tlsutil.IdentityOf(certs[0]); err != nil || id != (tlsutil.Identity{Role: tlsutil.RoleNode, Name: "n1"}) {
		t.Errorf("identity %v %v", id, err)
	}
	// The same agent asking again (a lost answer) gets the same
	// certificate without using the token up.
	code, body = send(t, anon, "POST", base+"/v1/enroll", req)
	var again1 api.EnrollResponse
	if code != 200 || json.Unmarshal([]byte(body), &again1) != nil || again1.CertPEM != er.CertPEM {
		t.Errorf("retry with the same key: %d %s", code, body)
	}
	// No agent may take a coordinator's name.
	if _, err := s.apply(CoordinatorsType, CoordinatorsCmd{Coordinators: []CoordinatorInfo{{Name: "c1", HTTPAddr: s.HTTPAddr()}}}); err != nil {
		t.Fatal(err)
	}
	reqC, _ := enrollReq(t, "c1", tok.Secret)
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", reqC); code != 409 || !strings.Contains(msg, "name of a coordinator") {
		t.Errorf("enrolling as a coordinator: %d %s", code, msg)
	}
	// Used up.
	req2, _ := enrollReq(t, "n2", tok.Secret)
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", req2); code != 403 || !strings.Contains(msg, "used up") {
		t.Errorf("used-up token: %d %s", code, msg)
	}
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", strings.Replace(req2, tok.Secret, "dtkjoin-nope", 1)); code != 403 || !strings.Contains(msg, "unknown join token") {
		t.Errorf("wrong token: %d %s", code, msg)
	}
	// Without a token: pending until approved, the same key picks the
	// certificate up; another key for the same name is refused.
	req3, _ := enrollReq(t, "n3", "")
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", req3); code != 202 {
		t.Fatalf("pending: %d %s", code, msg)
	}
	if code, _ := send(t, anon, "POST", base+"/v1/enroll", req3); code != 202 {
		t.Errorf("still pending: %d", code)
	}
	other3, _ := enrollReq(t, "n3", "")
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", other3); code != 409 {
		t.Errorf("second key for a pending name: %d %s", code, msg)
	}
	if code, msg := send(t, operator, "POST", base+"/v1/enroll/pending/n3/approve", ""); code != 200 {
		t.Fatalf("approve: %d %s", code, msg)
	}
	code, body = send(t, anon, "POST", base+"/v1/enroll", req3)
	if code != 200 || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("approved pick-up: %d %s", code, body)
	}
	req4, _ := enrollReq(t, "n4", "")
	send(t, anon, "POST", base+"/v1/enroll", req4)
	send(t, operator, "POST", base+"/v1/enroll/pending/n4/reject", "")
	if code, msg := send(t, anon, "POST", base+"/v1/enroll", req4); code != 403 || !strings.Contains(msg, "rejected") {
		t.Errorf("rejected: %d %s", code, msg)
	}
	// Removal of an unknown node is a 404; of n1 revokes its certificate.
	if code, _ := send(t, operator, "DELETE", base+"/v1/nodes/ghost", ""); code != 404 {
		t.Errorf("remove ghost: %d", code)
	}
	if code, msg := send(t, operator, "DELETE", base+"/v1/nodes/n1", ""); code != 200 {
		t.Fatalf("remove: %d %s", code, msg)
	}
	if why := s.State().Revoked("n1", tlsutil.SerialHex(certs[0]), certs[0].NotBefore.UnixMilli()); why == "" {
		t.Error("n1's certificate is not revoked")
	}
	// A certificate made offline for n1 before the removal is refused too;
	// re-enrolling n1 gets a certificate that starts after it.
	offline := p.client(tlsutil.RoleNode, "n1")
	if code, msg := send(t, offline, "GET", base+"/v1/nodes/n1/plan", ""); code != 401 || !strings.Contains(msg, "removed") {
		t.Errorf("offline cert after removal: %d %s", code, msg)
	}
	code, body = send(t, operator, "POST", base+"/v1/tokens", `{"max_uses":1}`)
	json.Unmarshal([]byte(body), &tok)
	reqAgain, _ := enrollReq(t, "n1", tok.Secret)
	code, body = send(t, anon, "POST", base+"/v1/enroll", reqAgain)
	if code != 200 {
		t.Fatalf("re-enroll: %d %s", code, body)
	}
	json.Unmarshal([]byte(body), &er)
	again, _ := tlsutil.ParseCertsPEM([]byte(er.CertPEM))
	if why := s.State().Revoked("n1", tlsutil.SerialHex(again[0]), again[0].NotBefore.UnixMilli()); why != "" {
		t.Errorf("the re-enrolled certificate is refused: %s", why)
	}
}

// The CA key is stored sealed: the state and a snapshot never hold it in
// clear, and a coordinator with another key-encryption key cannot use it.
func TestTrust_CAKeySealed_SnapshotRoundTrip(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	base := "https://" + s.HTTPAddr()
	anon, operator := p.anonymous(), p.client(tlsutil.RoleClient, "ops")
	_, body := send(t, operator, "POST", base+"/v1/tokens", `{"max_uses":2}`)
	var tok api.TokenResponse
	json.Unmarshal([]byte(body), &tok)
	req, _ := enrollReq(t, "n1", tok.Secret)
	req3, _ := enrollReq(t, "n3", "")
	if code, _ := send(t, anon, "POST", base+"/v1/enroll", req); code != 200 {
		t.Fatal("enroll n1")
	}
	if code, _ := send(t, anon, "POST", base+"/v1/enroll", req3); code != 202 {
		t.Fatal("pending n3")
	}
	keyBody := strings.Split(string(p.caKey), "\n")[1]
	if st := stateJSON(s); strings.Contains(st, keyBody) || !strings.Contains(st, "ca_key_sealed") {
		t.Fatal("the CA key is in clear in the state, or missing")
	}
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sink.Bytes()), keyBody) || strings.Contains(string(sink.Bytes()), `"n3"`) {
		t.Fatal("the CA key or the state is in clear in a snapshot")
	}
	// Another cluster's key-encryption key cannot restore it.
	other := NewFSM(s.log)
	otherKEK, _ := secret.GenerateKey()
	ok, _ := secret.ParseKey(otherKEK)
	other.SetKEK(ok)
	if err := other.Restore(io.NopCloser(strings.NewReader(string(sink.Bytes())))); err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("restore with another KEK: %v", err)
	}
	f := NewFSM(s.log)
	f.SetKEK(s.cfg.KEK)
	if err := f.Restore(io.NopCloser(strings.NewReader(string(sink.Bytes())))); err != nil {
		t.Fatal(err)
	}
	c1, k1 := s.State().ClusterCA()
	c2, k2 := f.State().ClusterCA()
	if c1 != c2 || k1 != k2 || c1 == "" {
		t.Fatal("trust data lost in the snapshot round trip")
	}
	trustJSON := func(st *State) string {
		st.mu.RLock()
		defer st.mu.RUnlock()
		b, _ := json.Marshal(st.data.Trust)
		return string(b)
	}
	if a, b := trustJSON(s.State()), trustJSON(f.State()); a != b || !strings.Contains(a, `"n1"`) || !strings.Contains(a, `"n3"`) {
		t.Fatalf("trust tables differ after the snapshot round trip:\n%s\n%s", a, b)
	}
	wrong, _ := secret.GenerateKey()
	wk, _ := secret.ParseKey(wrong)
	if _, err := secret.Open(wk, k2, caKeyLabel); err == nil {
		t.Fatal("opened with another key-encryption key")
	}
}
