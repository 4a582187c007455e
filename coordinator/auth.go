package coordinator

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// Who may call what. Every request resolves its caller once, in the
// middleware, from the verified client certificate (authenticate); each
// route declares the access it needs and is checked before anything else
// runs, forwarding to the leader included (authorize).
//
//   - server certificates are coordinators: they may do everything, and
//     when they forward a request they name the original caller in
//     callerHeader, which is believed only from them;
//   - client certificates are operators: everything but acting as a node
//     (posting reports, registering);
//   - node certificates may read only their own plan slice, operations,
//     gossip keys and the module blobs those need, and post reports and
//     register only for themselves.
//
// The next access-control layer (ACL tokens) plugs into the same two
// functions.

// access is what a route needs.
type access int

const (
	// accessPublic needs no credential: enrollment, where a new agent has
	// no certificate yet.
	accessPublic access = iota
	// accessAny needs any valid certificate of the cluster.
	accessAny
	// accessOperator needs an operator (client) or coordinator (server)
	// certificate.
	accessOperator
	// accessNodeRead is the node named in the path, or an operator.
	accessNodeRead
	// accessNodeWrite is the node named in the path only (or a
	// coordinator forwarding for it): nobody else may speak for a node.
	accessNodeWrite
	// accessBlob is an operator, or a node whose slice needs the blob.
	accessBlob
	// accessServer is another coordinator only.
	accessServer
	// accessBootstrap is an operator certificate, with no ACL token yet
	// (the ACL bootstrap, which works once).
	accessBootstrap
)

// routeInfo records a route and the access it needs (the tests try every
// route with every kind of caller).
type routeInfo struct {
	pattern string
	access  access
	// needs: the route names the ACL rights it needs (else the handler
	// checks, or a valid token is enough).
	needs bool
}

// callerHeader carries the original caller of a forwarded request, and
// remoteHeader its address; both are believed only from coordinators.
const (
	callerHeader = "X-Dtk-Caller"
	remoteHeader = "X-Dtk-Remote-Addr"
	keyHeader    = "X-Dtk-Caller-Key"
)

// caller is who made a request.
type caller struct {
	id tlsutil.Identity
	// insecure: the coordinator runs without TLS and everyone may do
	// everything (dtk-agent run --insecure).
	insecure bool
	// anonymous: no certificate was presented.
	anonymous bool
	// via is the coordinator that forwarded the request, if any.
	via string
	// remote is the address the request came from (before forwarding).
	remote string
	// key is the fingerprint of the public key the caller's certificate
	// holds (renewal certifies only that key).
	key string
}

func (c caller) operator() bool {
	return c.insecure || c.id.Role == tlsutil.RoleServer || c.id.Role == tlsutil.RoleClient
}

// isNode reports whether the caller speaks as node name.
func (c caller) isNode(name string) bool {
	// A coordinator that also runs an agent acts as its own node.
	return c.insecure || (c.id.Role == tlsutil.RoleNode || c.id.Role == tlsutil.RoleServer) && c.id.Name == name
}

func (c caller) String() string {
	if c.insecure {
		return "anyone (insecure mode)"
	}
	if c.anonymous {
		return "anonymous"
	}
	return c.id.String()
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// verifyCache remembers verified client certificates (by a hash of their
// bytes) for one generation of the TLS material, so that a long-lived
// fleet does not pay a chain verification per request.
type verifyCache struct {
	mu  sync.Mutex
	gen uint64
	ids map[[32]byte]verified
}

type verified struct {
	id        tlsutil.Identity
	key       string
	serial    string
	notBefore int64
	notAfter  int64
}

const verifyCacheMax = 20000

// authenticate resolves the caller of r, or answers 401 when it presented
// a certificate that does not hold (another CA, expired, revoked).
func (s *Server) authenticate(r *http.Request) (caller, *api.APIError) {
	c, err := s.authenticateTLS(r)
	if c.remote == "" {
		c.remote = r.RemoteAddr
	}
	return c, err
}

func (s *Server) authenticateTLS(r *http.Request) (caller, *api.APIError) {
	if s.cfg.TLS == nil {
		return caller{insecure: true}, nil
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return caller{anonymous: true}, nil
	}
	v, err := s.verifyPeer(r.TLS.PeerCertificates)
	if err != nil {
		s.log.Warn("client certificate refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		return caller{}, &api.APIError{Code: http.StatusUnauthorized, Message: "client certificate refused: " + err.Error()}
	}
	if v.notAfter < nowMS() {
		return caller{}, &api.APIError{Code: http.StatusUnauthorized, Message: "client certificate refused: certificate expired"}
	}
	if v.id.Role == tlsutil.RoleNode {
		if why := s.State().Revoked(v.id.Name, v.serial, v.notBefore); why != "" {
			s.log.Warn("revoked certificate refused", "remote", r.RemoteAddr, "identity", v.id, "path", r.URL.Path)
			return caller{}, &api.APIError{Code: http.StatusUnauthorized, Message: "client certificate refused: " + why}
		}
	}
	c := caller{id: v.id, key: v.key}
	if h := r.Header.Get(callerHeader); h != "" {
		if v.id.Role != tlsutil.RoleServer {
			return caller{}, &api.APIError{Code: http.StatusForbidden, Message: fmt.Sprintf("%s may not speak for another caller (%s is for coordinators)", v.id, callerHeader)}
		}
		remote := r.Header.Get(remoteHeader)
		if h == "anonymous" {
			return caller{anonymous: true, via: v.id.Name, remote: remote}, nil
		}
		id, err := tlsutil.ParseIdentity(h)
		if err != nil {
			return caller{}, badRequest("%s: %v", callerHeader, err)
		}
		c = caller{id: id, via: v.id.Name, remote: remote, key: r.Header.Get(keyHeader)}
	}
	return c, nil
}

func (s *Server) verifyPeer(chain []*x509.Certificate) (verified, error) {
	key := sha256.Sum256(chain[0].Raw)
	gen := s.cfg.TLS.Generation()
	vc := &s.verified
	vc.mu.Lock()
	if vc.gen != gen || len(vc.ids) >= verifyCacheMax {
		vc.gen, vc.ids = gen, map[[32]byte]verified{}
	}
	v, ok := vc.ids[key]
	vc.mu.Unlock()
	if ok {
		return v, nil
	}
	id, err := s.cfg.TLS.VerifyPeer(chain, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return verified{}, err
	}
	pubKey, _ := publicKeyFingerprint(chain[0].PublicKey)
	v = verified{id: id, key: pubKey, serial: tlsutil.SerialHex(chain[0]), notBefore: chain[0].NotBefore.UnixMilli(), notAfter: chain[0].NotAfter.UnixMilli()}
	vc.mu.Lock()
	if vc.gen == gen {
		vc.ids[key] = v
	}
	vc.mu.Unlock()
	return v, nil
}

// authorize checks that c may call a route needing a; name is the node
// named in the path (node routes) or the blob digest (accessBlob).
func (s *Server) authorize(c caller, a access, r *http.Request) error {
	if c.insecure || a == accessPublic {
		return nil
	}
	if c.anonymous {
		return &api.APIError{Code: http.StatusUnauthorized, Message: fmt.Sprintf(
			"%s %s needs a certificate signed by the cluster CA (dtkctl: --client-cert and --client-key, or $DTK_CLIENT_CERT and $DTK_CLIENT_KEY)", r.Method, r.URL.Path)}
	}
	forbid := func(format string, args ...any) error {
		return &api.APIError{Code: http.StatusForbidden, Message: c.String() + " " + fmt.Sprintf(format, args...)}
	}
	switch a {
	case accessAny:
		return nil
	case accessOperator, accessBootstrap:
		if c.operator() {
			return nil
		}
		return forbid("may not call %s %s: it needs an operator (client) certificate", r.Method, r.URL.Path)
	case accessNodeRead:
		if c.operator() || c.isNode(r.PathValue("name")) {
			return nil
		}
		return forbid("may not read node %q's data (%s %s): a node reads only its own", r.PathValue("name"), r.Method, r.URL.Path)
	case accessNodeWrite:
		if c.isNode(r.PathValue("name")) {
			return nil
		}
		return forbid("may not act as node %q (%s %s): only that node's own certificate may", r.PathValue("name"), r.Method, r.URL.Path)
	case accessServer:
		if c.id.Role == tlsutil.RoleServer && c.via == "" {
			return nil
		}
		return forbid("may not call %s %s: it is for coordinators only", r.Method, r.URL.Path)
	case accessBlob:
		if c.operator() {
			return nil
		}
		if c.id.Role == tlsutil.RoleNode && slices.Contains(s.State().SliceDigests(c.id.Name), r.PathValue("digest")) {
			return nil
		}
		return forbid("may not read blob %s: its plan does not use it", r.PathValue("digest"))
	}
	return forbid("may not call %s %s", r.Method, r.URL.Path)
}

// stillAllowed re-checks, after a long wait, that a node's certificate was
// not revoked meanwhile (a removed node's long-poll must not answer).
func (s *Server) stillAllowed(r *http.Request) error {
	c := callerOf(r)
	if c.insecure || c.id.Role != tlsutil.RoleNode || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	leaf := r.TLS.PeerCertificates[0]
	if why := s.State().Revoked(c.id.Name, tlsutil.SerialHex(leaf), leaf.NotBefore.UnixMilli()); why != "" {
		return &api.APIError{Code: http.StatusUnauthorized, Message: "client certificate refused: " + why}
	}
	return nil
}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}
