package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// Enrollment: a new agent sends a certificate signing request for its
// node name with a join token (or without one, to wait for an operator),
// and the leader signs it with the cluster CA kept sealed in the
// replicated state. See docs/security.md.

const (
	// DefaultNodeCertTTL is the lifetime of certificates enrollment issues
	// (Config.NodeCertTTL changes it); agents renew at two thirds of it.
	DefaultNodeCertTTL = 365 * 24 * time.Hour
	// defaultTokenTTL applies when a token request names none.
	defaultTokenTTL = 24 * time.Hour
	// caKeyLabel binds the sealed CA key to its purpose.
	caKeyLabel = "cluster-ca-key"
)

func nowMS() int64 { return time.Now().UnixMilli() }

// publicKeyFingerprint is "sha256:<hex>" of a public key's DER encoding.
func publicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// parseCSR checks a signing request and fingerprints its key.
func parseCSR(csrPEM string) (*x509.CertificateRequest, string, error) {
	csr, err := tlsutil.ParseCSR([]byte(csrPEM))
	if err != nil {
		return nil, "", badRequest("csr: %v", err)
	}
	pub, err := publicKeyFingerprint(csr.PublicKey)
	if err != nil {
		return nil, "", badRequest("csr: %v", err)
	}
	return csr, pub, nil
}

// TokenHash is how a join token's secret is stored and looked up.
func TokenHash(secretText string) string {
	sum := sha256.Sum256([]byte(secretText))
	return hex.EncodeToString(sum[:])
}

// caCache keeps the unsealed CA for the sealed value it came from.
type caCache struct {
	mu     sync.Mutex
	sealed string
	ca     *tlsutil.CA
}

// clusterCA unseals the CA kept in the replicated state.
func (s *Server) clusterCA() (*tlsutil.CA, error) {
	certPEM, sealed := s.State().ClusterCA()
	if sealed == "" {
		return nil, &api.APIError{Code: http.StatusServiceUnavailable, Message: "enrollment is not set up: no coordinator has been given the cluster CA key (tls { ca_key_file = ... } and keyring_file on one coordinator)"}
	}
	if len(s.cfg.KEK) == 0 {
		return nil, &api.APIError{Code: http.StatusServiceUnavailable, Message: "coordinator " + s.cfg.Name + " has no keyring_file, so it cannot unseal the CA key; give every coordinator the same keyring_file"}
	}
	s.ca.mu.Lock()
	defer s.ca.mu.Unlock()
	if s.ca.sealed == sealed && s.ca.ca != nil {
		return s.ca.ca, nil
	}
	keyPEM, err := secret.Open(s.cfg.KEK, sealed, caKeyLabel)
	if err != nil {
		return nil, fmt.Errorf("unseal the cluster CA key (is keyring_file the same on every coordinator?): %w", err)
	}
	ca, err := tlsutil.LoadCA([]byte(certPEM), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	s.ca.sealed, s.ca.ca = sealed, ca
	return ca, nil
}

// storeCA runs on every coordinator that was given the CA key: when the
// replicated state holds no CA, or an older one (by NotBefore: a rotation),
// it seals the key and stores it, through Raft on the leader or by asking
// the leader (PUT /v1/operator/cluster-ca). The newest CA wins, so
// coordinators that still hold an older key do not fight over it.
func (s *Server) storeCA() {
	if len(s.cfg.CAKeyPEM) == 0 || s.cfg.TLS == nil || s.caStored.Load() {
		return
	}
	certs, err := tlsutil.ParseCertsPEM(s.cfg.TLS.CAPEM())
	if err != nil {
		return
	}
	for _, c := range certs {
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		if _, err := tlsutil.LoadCA(certPEM, s.cfg.CAKeyPEM); err != nil {
			continue
		}
		if cur, _ := s.State().ClusterCA(); cur != "" {
			if cur == string(certPEM) {
				s.caStored.Store(true)
				return
			}
			if old, err := tlsutil.ParseCertsPEM([]byte(cur)); err == nil && !c.NotBefore.After(old[0].NotBefore) {
				s.log.Warn("tls.ca_key_file belongs to an older CA than the one the cluster uses for enrollment; ignoring it")
				s.caStored.Store(true)
				return
			}
		}
		sealed, err := secret.Seal(s.cfg.KEK, s.cfg.CAKeyPEM, caKeyLabel)
		if err != nil {
			s.log.Error("seal the CA key", "err", err)
			return
		}
		cmd := PutCACmd{CertPEM: string(certPEM), KeySealed: sealed}
		if s.raft.State() == raftLeader {
			_, err = s.apply(PutCAType, cmd)
		} else {
			err = s.sendCA(cmd)
		}
		if err != nil {
			s.log.Debug("store the cluster CA: will retry", "err", err)
			return
		}
		s.caStored.Store(true)
		s.log.Info("cluster CA stored (key sealed) for enrollment", "fingerprint", tlsutil.Fingerprint(c))
		return
	}
	s.log.Error("tls.ca_key_file does not belong to any CA in tls.ca_file; enrollment stays off")
	s.caStored.Store(true)
}

// sendCA asks the leader to store the sealed CA.
func (s *Server) sendCA(cmd PutCACmd) error {
	leader := s.leaderHTTP()
	if leader == "" {
		return ErrNotLeader
	}
	b, _ := json.Marshal(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "PUT", s.peerURL(leader, "/v1/operator/cluster-ca"), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.pnet.forward.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %d", resp.StatusCode)
	}
	return nil
}

// putClusterCA is PUT /v1/operator/cluster-ca, between coordinators only:
// a follower that holds the CA key hands it (sealed) to the leader.
func (s *Server) putClusterCA(w http.ResponseWriter, r *http.Request) error {
	var cmd PutCACmd
	if err := decode(w, r, &cmd); err != nil {
		return err
	}
	certs, err := tlsutil.ParseCertsPEM([]byte(cmd.CertPEM))
	if err != nil || len(certs) != 1 || !certs[0].IsCA || !secret.IsSealed(cmd.KeySealed) {
		return badRequest("cluster-ca: one CA certificate and a sealed key are needed")
	}
	if cur, _ := s.State().ClusterCA(); cur != "" {
		if old, err := tlsutil.ParseCertsPEM([]byte(cur)); err == nil && !certs[0].NotBefore.After(old[0].NotBefore) {
			return writeJSON(w, http.StatusOK, map[string]string{"kept": tlsutil.Fingerprint(old[0])})
		}
	}
	if _, err := s.apply(PutCAType, cmd); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"stored": tlsutil.Fingerprint(certs[0])})
}

// issueNodeCert signs a node certificate for pub.
func (s *Server) issueNodeCert(name string, pub crypto.PublicKey, now int64) (string, *x509.Certificate, error) {
	ca, err := s.clusterCA()
	if err != nil {
		return "", nil, err
	}
	validity := s.cfg.NodeCertTTL
	if validity <= 0 {
		validity = DefaultNodeCertTTL
	}
	// Back-dated for clock skew, by a minute at most and a tenth of the
	// lifetime for short ones (agents renew at two thirds of it).
	notBefore := time.UnixMilli(now).Add(-min(time.Minute, validity/10))
	if at := s.State().RemovedAt(name); at != 0 && !notBefore.After(time.UnixMilli(at)) {
		// Certificates of a removed node name issued up to its removal stay
		// revoked: the new one must start after it.
		notBefore = time.UnixMilli(at + 1000)
	}
	// The lifetime counts from now, whatever the back-dating above.
	notAfter := time.UnixMilli(now).Add(validity)
	certPEM, _, err := ca.Issue(tlsutil.CertOptions{Role: tlsutil.RoleNode, Name: name, PublicKey: pub, NotBefore: notBefore, Validity: notAfter.Sub(notBefore)})
	if err != nil {
		return "", nil, fmt.Errorf("issue certificate: %w", err)
	}
	certs, err := tlsutil.ParseCertsPEM(certPEM)
	if err != nil {
		return "", nil, err
	}
	return string(certPEM), certs[0], nil
}

// enroll is POST /v1/enroll (no credential needed; forwarded to the
// leader like every write).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.TLS == nil {
		return &api.APIError{Code: http.StatusConflict, Message: "this cluster runs without TLS (--insecure): there is nothing to enroll in"}
	}
	var req api.EnrollRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := checkName("node", req.Name); err != nil {
		return err
	}
	for _, ci := range s.State().CoordinatorDirectory() {
		if ci.Name == req.Name {
			return fmt.Errorf("%w: %q is the name of a coordinator; an agent cannot enroll under it", ErrConflict, req.Name)
		}
	}
	csr, pub, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	now := nowMS()
	remote := callerOf(r).remote
	if req.Token != "" {
		tok := s.State().TokenByHash(TokenHash(req.Token))
		if e := s.State().Enrolled(req.Name); tok != nil && e != nil && e.PublicKey == pub && e.Via == "token:"+tok.ID && e.CertPEM != "" && e.NotAfter > now {
			// The same agent asking again (its answer was lost): the same
			// certificate, without taking another use of the token.
			return writeJSON(w, http.StatusOK, api.EnrollResponse{State: api.PendingApproved, CertPEM: e.CertPEM, CAPEM: string(s.cfg.TLS.CAPEM()), PublicKey: pub})
		}
		if err := tokenUsable(tok, now); err != nil {
			s.log.Warn("enrollment refused", "node", req.Name, "remote", remote, "err", err)
			return err
		}
		certPEM, cert, err := s.issueNodeCert(req.Name, csr.PublicKey, now)
		if err != nil {
			return err
		}
		_, err = s.apply(EnrollType, EnrollCmd{TokenID: tok.ID, CertPEM: certPEM, Enrollment: Enrollment{
			Name: req.Name, Serial: tlsutil.SerialHex(cert), PublicKey: pub, NotAfter: cert.NotAfter.UnixMilli(), Time: now, Via: "token:" + tok.ID,
		}})
		if err != nil {
			s.log.Warn("enrollment refused", "node", req.Name, "remote", remote, "err", err)
			return err
		}
		s.log.Info("node enrolled", "node", req.Name, "token", tok.ID, "remote", remote, "serial", tlsutil.SerialHex(cert))
		return writeJSON(w, http.StatusOK, api.EnrollResponse{State: api.PendingApproved, CertPEM: certPEM, CAPEM: string(s.cfg.TLS.CAPEM()), PublicKey: pub})
	}
	// No token: wait for an operator.
	p := s.State().Pending(req.Name)
	if p == nil || p.PublicKey != pub {
		resp, err := s.apply(PendingType, PendingCmd{Request: api.PendingNode{Name: req.Name, PublicKey: pub, Addr: remote, Time: now, CSR: req.CSR}})
		if err != nil {
			return err
		}
		p = resp.(*api.PendingNode)
		s.log.Info("enrollment request waiting for an operator", "node", req.Name, "remote", remote, "public_key", pub)
	}
	switch p.State {
	case api.PendingApproved:
		return writeJSON(w, http.StatusOK, api.EnrollResponse{State: api.PendingApproved, CertPEM: p.CertPEM, CAPEM: string(s.cfg.TLS.CAPEM()), PublicKey: pub})
	case api.PendingRejected:
		return &api.APIError{Code: http.StatusForbidden, Message: fmt.Sprintf("the enrollment request of node %q was rejected by an operator", req.Name)}
	}
	return writeJSON(w, http.StatusAccepted, api.EnrollResponse{State: api.PendingWaiting, PublicKey: pub,
		Message: fmt.Sprintf("waiting for an operator: dtkctl node approve %s (check the key %s)", req.Name, pub)})
}

func (s *Server) listPending(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.State().PendingNodes())
}

func (s *Server) approvePending(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p := s.State().Pending(name)
	if p == nil || p.State != api.PendingWaiting {
		return fmt.Errorf("%w: no enrollment request from node %q is waiting (dtkctl node pending lists them)", ErrNotFound, name)
	}
	csr, err := tlsutil.ParseCSR([]byte(p.CSR))
	if err != nil {
		return fmt.Errorf("stored request: %w", err)
	}
	now := nowMS()
	certPEM, cert, err := s.issueNodeCert(name, csr.PublicKey, now)
	if err != nil {
		return err
	}
	resp, err := s.apply(EnrollType, EnrollCmd{CertPEM: certPEM, Enrollment: Enrollment{
		Name: name, Serial: tlsutil.SerialHex(cert), PublicKey: p.PublicKey, NotAfter: cert.NotAfter.UnixMilli(), Time: now, Via: "approved by " + callerOf(r).String(),
	}})
	if err != nil {
		return err
	}
	s.log.Info("enrollment approved", "node", name, "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) rejectPending(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.apply(RejectType, RejectCmd{Name: r.PathValue("name"), Time: nowMS()})
	if err != nil {
		return err
	}
	s.log.Info("enrollment rejected", "node", r.PathValue("name"), "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, resp)
}

// --- tokens ---

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ttl := defaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < 0 {
			return badRequest("ttl must be a duration such as 24h or 0 (none), got %q", req.TTL)
		}
		ttl = d
	}
	if req.MaxUses < 0 {
		return badRequest("max_uses must be 0 (unlimited) or more, got %d", req.MaxUses)
	}
	if len(req.Description) > 1024 {
		return badRequest("description is longer than 1024 bytes")
	}
	if err := s.checkLabels(req.Labels); err != nil {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secretText := "dtkjoin-" + base64.RawURLEncoding.EncodeToString(b)
	hash := TokenHash(secretText)
	now := nowMS()
	tok := api.JoinToken{ID: hash[:12], SecretHash: hash, Description: req.Description, Labels: req.Labels, MaxUses: req.MaxUses, CreatedMS: now}
	if ttl > 0 {
		tok.ExpiresMS = now + ttl.Milliseconds()
	}
	resp, err := s.apply(CreateTokenType, CreateTokenCmd{Token: tok, Time: now})
	if err != nil {
		return err
	}
	s.log.Info("join token created", "id", tok.ID, "by", callerOf(r).String(), "max_uses", tok.MaxUses, "ttl", ttl)
	return writeJSON(w, http.StatusOK, api.TokenResponse{JoinToken: resp.(api.JoinToken), Secret: secretText})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.State().Tokens())
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.apply(DeleteTokenType, DeleteTokenCmd{ID: r.PathValue("id")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// --- nodes ---

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	resp, err := s.apply(RemoveNodeType, RemoveNodeCmd{Name: name, Time: nowMS()})
	if err != nil {
		return err
	}
	s.log.Info("node removed, its certificates revoked", "node", name, "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) setNodeLabels(w http.ResponseWriter, r *http.Request) error {
	var req api.NodeLabelsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkLabels(req.Labels); err != nil {
		return err
	}
	resp, err := s.apply(NodeLabelsType, NodeLabelsCmd{Name: r.PathValue("name"), Labels: req.Labels, MaxLabels: s.cfg.Limits.Labels})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// --- gossip keyring ---

// keyring is what the gossip pool offers for its encryption keys.
type keyring interface {
	Encrypted() bool
	LocalKeys() (primary string, keys []string)
	ListKeys() (*gossip.KeyringStatus, error)
	InstallKey(key string) (*gossip.KeyringStatus, error)
	UseKey(key string) (*gossip.KeyringStatus, error)
	RemoveKey(key string) (*gossip.KeyringStatus, error)
}

func (s *Server) keyring() (keyring, error) {
	k, ok := s.getPeers().(keyring)
	if !ok || !k.Encrypted() {
		return nil, &api.APIError{Code: http.StatusConflict, Message: "gossip encryption is off: start every member with --encrypt (dtk-agent keygen makes a key)"}
	}
	return k, nil
}

// nodeTrust hands an enrolled agent the CA bundle and the gossip keys.
func (s *Server) nodeTrust(w http.ResponseWriter, r *http.Request) error {
	var out api.NodeTrust
	if s.cfg.TLS != nil {
		out.CAPEM = string(s.cfg.TLS.CAPEM())
	}
	if k, ok := s.getPeers().(keyring); ok && k.Encrypted() {
		out.GossipPrimary, out.GossipKeys = k.LocalKeys()
	}
	return writeJSON(w, http.StatusOK, out)
}

// renewNode gives a node a fresh certificate for the key it holds (the
// agent asks when two thirds of its certificate's life have passed).
func (s *Server) renewNode(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	name := r.PathValue("name")
	if s.cfg.TLS == nil {
		return &api.APIError{Code: http.StatusConflict, Message: "this cluster runs without TLS: there is nothing to renew"}
	}
	if c.id.Role != tlsutil.RoleNode {
		return &api.APIError{Code: http.StatusForbidden, Message: c.String() + " may not renew a node certificate: only the node itself may"}
	}
	var req api.RenewRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	csr, pub, err := parseCSR(req.CSR)
	if err != nil {
		return err
	}
	if c.key == "" || pub != c.key {
		return &api.APIError{Code: http.StatusForbidden, Message: "renewal certifies the key the node already holds: the request is for another key (enroll again for a new key)"}
	}
	now := nowMS()
	certPEM, cert, err := s.issueNodeCert(name, csr.PublicKey, now)
	if err != nil {
		return err
	}
	_, err = s.apply(EnrollType, EnrollCmd{Renew: true, CertPEM: certPEM, Enrollment: Enrollment{
		Name: name, Serial: tlsutil.SerialHex(cert), PublicKey: pub, NotAfter: cert.NotAfter.UnixMilli(), Time: now, Via: "renewed",
	}})
	if err != nil {
		return err
	}
	s.log.Info("node certificate renewed", "node", name, "serial", tlsutil.SerialHex(cert), "expires", cert.NotAfter.UTC().Format(time.RFC3339))
	return writeJSON(w, http.StatusOK, api.EnrollResponse{State: api.PendingApproved, CertPEM: certPEM, CAPEM: string(s.cfg.TLS.CAPEM()), PublicKey: pub})
}

func (s *Server) keyringList(w http.ResponseWriter, r *http.Request) error {
	k, err := s.keyring()
	if err != nil {
		return err
	}
	st, err := k.ListKeys()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) keyringChange(w http.ResponseWriter, r *http.Request) error {
	k, err := s.keyring()
	if err != nil {
		return err
	}
	var req api.KeyringRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, err := secret.ParseKey(req.Key); err != nil {
		return badRequest("key: %v", err)
	}
	var st *gossip.KeyringStatus
	switch op := r.PathValue("op"); op {
	case "install":
		st, err = k.InstallKey(req.Key)
	case "use":
		st, err = k.UseKey(req.Key)
	case "remove":
		st, err = k.RemoveKey(req.Key)
	default:
		return &api.APIError{Code: http.StatusNotFound, Message: fmt.Sprintf("no keyring operation %q (install, use, remove)", op)}
	}
	if err != nil {
		return &api.APIError{Code: http.StatusConflict, Message: err.Error(), Details: st}
	}
	s.log.Info("gossip keyring changed", "op", r.PathValue("op"), "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, st)
}

// --- plain HTTP on the TLS port ---

// plainHTTPRefuser answers a client that speaks plain HTTP to the TLS
// port with a JSON 400 saying to use https, instead of the TLS library's
// bare text.
type plainHTTPRefuser struct {
	net.Listener
	log *slog.Logger
}

// plainLogEvery bounds the warnings about non-TLS connections (a scanner
// must not flood the log); the ones in between are counted.
const plainLogEvery = 10 * time.Second

var plainLog struct {
	sync.Mutex
	last       time.Time
	suppressed int
}

func (l plainHTTPRefuser) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, log: l.log}, nil
}

type sniffConn struct {
	net.Conn
	log     *slog.Logger
	checked bool
}

var errPlainHTTP = errors.New("plain HTTP on the TLS port")

func (c *sniffConn) Read(b []byte) (int, error) {
	if c.checked {
		return c.Conn.Read(b)
	}
	c.checked = true
	n, err := c.Conn.Read(b)
	if n == 0 || b[0] == 0x16 { // a TLS handshake record
		return n, err
	}
	if isHTTPMethodStart(b[:n]) {
		body, _ := json.Marshal(api.APIError{Code: http.StatusBadRequest, Message: "this coordinator speaks HTTPS only (mutual TLS): use https:// with the cluster CA and a client certificate"})
		fmt.Fprintf(c.Conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
	plainLog.Lock()
	if now := time.Now(); now.Sub(plainLog.last) >= plainLogEvery {
		c.log.Warn("refused a connection that is not TLS", "remote", c.Conn.RemoteAddr().String(), "similar_suppressed", plainLog.suppressed)
		plainLog.last, plainLog.suppressed = now, 0
	} else {
		plainLog.suppressed++
	}
	plainLog.Unlock()
	c.Conn.Close()
	return 0, errPlainHTTP
}

func isHTTPMethodStart(b []byte) bool {
	line, _, _ := bufio.NewReader(bytes.NewReader(b)).ReadLine()
	m, _, ok := strings.Cut(string(line), " ")
	return ok && len(m) > 0 && len(m) < 10 && strings.ToUpper(m) == m
}

// httpErrorLog routes the HTTP server's own messages (TLS handshake
// failures among them) to slog at debug: the refusals that matter are
// logged where they are decided.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.With("component", "http").Handler(), slog.LevelDebug)
}
