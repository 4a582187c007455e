package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/names"
	"github.com/dtkhq/dtk/plan"
)

// Bounds of blocking queries. Request bodies are bounded per route
// (limits.go).
const (
	maxWait     = 10 * time.Minute
	defaultWait = 5 * time.Minute
)

// IndexHeader carries the state index a blocking query answered at.
const IndexHeader = "X-Dtk-Index"

func badRequest(format string, args ...any) *api.APIError {
	return &api.APIError{Code: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func checkName(kind, n string) error {
	if !names.Valid(n) {
		return badRequest("invalid %s name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", kind, n)
	}
	return nil
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler is the API: every route behind one stack (recovery, caller
// authentication, then per route: authorization, leader forwarding of
// writes, JSON errors).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes = s.routes[:0]
	route := func(pattern string, a access, nf needFunc, h handlerFunc) {
		s.routes = append(s.routes, routeInfo{pattern, a, nf != nil})
		mux.Handle(pattern, s.instrument(pattern, s.wrap(a, nf, bodyClassOf(pattern), h)))
	}
	R, W, D := acl.Read, acl.Write, acl.Deploy
	route("GET /v1/status", accessAny, nil, s.getStatus)
	route("POST /v1/modules", accessOperator, nil, s.pushModule)
	route("GET /v1/modules", accessOperator, nil, s.listModules)
	route("GET /v1/modules/{name}/{version}", accessOperator, needModule(R), s.getModule)
	route("DELETE /v1/modules/{name}/{version}", accessOperator, needModule(W), s.deleteModule)
	route("GET /v1/blobs/{digest}", accessBlob, s.needBlob, s.getBlob)
	route("POST /v1/bundles", accessOperator, need(acl.KindModule, W), s.importBundle)
	route("POST /v1/services", accessOperator, nil, s.stageService)
	route("GET /v1/services", accessOperator, nil, s.listServices)
	route("GET /v1/services/{name}", accessOperator, needService(R), s.getService)
	route("GET /v1/services/{name}/plan", accessOperator, needService(R), s.previewPlan)
	route("GET /v1/services/{name}/history", accessOperator, needService(R), s.getHistory)
	route("GET /v1/events", accessOperator, nil, s.getEvents)
	route("POST /v1/services/{name}/inputs", accessOperator, needService(W), s.setInputs)
	route("POST /v1/services/{name}/deploy", accessOperator, needService(D), s.deployService)
	route("POST /v1/services/{name}/rollout/{action}", accessOperator, needService(D), s.rolloutAction)
	route("POST /v1/services/{name}/revert", accessOperator, needService(D), s.revertService)
	route("GET /v1/services/{name}/generations", accessOperator, needService(R), s.getGenerations)
	route("POST /v1/services/{name}/upgrade", accessOperator, needService(W), s.upgradeService)
	route("POST /v1/services/{name}/dry-run", accessOperator, needService(D), s.startOp(plan.OpDryRun))
	route("POST /v1/services/{name}/exec", accessOperator, needService(D), s.startOp(plan.OpExec))
	route("POST /v1/services/{name}/cancel", accessOperator, needService(D), s.startOp(plan.OpCancel))
	route("POST /v1/services/{name}/logs", accessOperator, needService(R), s.startOp(plan.OpLogs))
	route("GET /v1/ops/{id}", accessOperator, s.needOp, s.getOp)
	route("GET /v1/ops/{id}/clusters", accessOperator, s.needOp, s.getOpClusters)
	route("GET /v1/nodes/{name}/ops", accessNodeRead, need(acl.KindNode, R), s.nodeOps)
	route("POST /v1/nodes/{name}/ops/{id}/results", accessNodeWrite, nil, s.opResults)
	route("DELETE /v1/services/{name}", accessOperator, needService(W), s.deleteService)
	route("GET /v1/nodes", accessOperator, need(acl.KindNode, R), s.listNodes)
	route("PUT /v1/nodes/{name}", accessNodeWrite, nil, s.registerNode)
	route("DELETE /v1/nodes/{name}", accessOperator, need(acl.KindNode, W), s.removeNode)
	route("POST /v1/nodes/{name}/labels", accessOperator, need(acl.KindNode, W), s.setNodeLabels)
	route("GET /v1/nodes/{name}/plan", accessNodeRead, need(acl.KindNode, R), s.nodePlan)
	route(reportsRoute, accessNodeWrite, nil, s.nodeReports)
	route("GET /v1/nodes/{name}/trust", accessNodeRead, need(acl.KindOperator, W), s.nodeTrust)
	route("POST /v1/nodes/{name}/renew", accessNodeWrite, nil, s.renewNode)
	route("POST /v1/enroll", accessPublic, nil, s.enroll)
	route("GET /v1/enroll/pending", accessOperator, need(acl.KindNode, R), s.listPending)
	route("POST /v1/enroll/pending/{name}/approve", accessOperator, need(acl.KindNode, W), s.approvePending)
	route("POST /v1/enroll/pending/{name}/reject", accessOperator, need(acl.KindNode, W), s.rejectPending)
	route("POST /v1/tokens", accessOperator, need(acl.KindNode, W), s.createToken)
	route("GET /v1/tokens", accessOperator, need(acl.KindNode, R), s.listTokens)
	route("DELETE /v1/tokens/{id}", accessOperator, need(acl.KindNode, W), s.deleteToken)
	route("POST /v1/agent/leave", accessOperator, need(acl.KindOperator, W), s.agentLeave)
	route("GET /v1/operator/members", accessOperator, need(acl.KindOperator, R), s.operatorMembers)
	route("GET /v1/operator/raft", accessOperator, need(acl.KindOperator, R), s.operatorRaft)
	route("DELETE /v1/operator/raft/peers/{id}", accessOperator, need(acl.KindOperator, W), s.operatorRemovePeer)
	route("GET /v1/operator/snapshot", accessOperator, need(acl.KindOperator, W), s.operatorSnapshotSave)
	route("PUT /v1/operator/snapshot", accessOperator, func(*http.Request) []acl.Need {
		// A restore replaces everything, the ACLs included.
		return []acl.Need{{Kind: acl.KindOperator, Level: W}, {Kind: acl.KindACL, Level: W}}
	}, s.operatorSnapshotRestore)
	route("PUT /v1/operator/cluster-ca", accessServer, nil, s.putClusterCA)
	route(forwardedReportsRoute, accessServer, nil, s.forwardedReports)
	route("GET /v1/operator/keyring", accessOperator, need(acl.KindOperator, W), s.keyringList)
	route("POST /v1/operator/keyring/{op}", accessOperator, need(acl.KindOperator, W), s.keyringChange)
	route("POST /v1/acl/bootstrap", accessBootstrap, nil, s.aclBootstrap)
	route("GET /v1/acl/policies", accessOperator, need(acl.KindACL, R), s.aclListPolicies)
	route("GET /v1/acl/policies/{name}", accessOperator, need(acl.KindACL, R), s.aclGetPolicy)
	route("PUT /v1/acl/policies/{name}", accessOperator, need(acl.KindACL, W), s.aclPutPolicy)
	route("DELETE /v1/acl/policies/{name}", accessOperator, need(acl.KindACL, W), s.aclDeletePolicy)
	route("GET /v1/acl/tokens", accessOperator, need(acl.KindACL, R), s.aclListTokens)
	route("GET /v1/acl/tokens/{id}", accessOperator, nil, s.aclGetToken)
	route("POST /v1/acl/tokens", accessOperator, need(acl.KindACL, W), s.aclCreateToken)
	route("DELETE /v1/acl/tokens/{id}", accessOperator, need(acl.KindACL, W), s.aclDeleteToken)
	route("GET /v1/audit", accessOperator, need(acl.KindOperator, R), s.getAudit)
	s.observabilityRoutes(route) // metrics, health, pprof (health.go)
	if s.cfg.UI {
		s.uiRoutes(mux) // the web dashboard: its own sign-in (ui.go)
	}
	route("/", accessPublic, nil, func(w http.ResponseWriter, r *http.Request) error {
		return &api.APIError{Code: http.StatusNotFound, Message: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)}
	})
	return s.middleware(mux)
}

// middleware recovers panics, resolves the caller and logs.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, &api.APIError{Code: http.StatusInternalServerError, Message: "internal error"})
			}
		}()
		c, aerr := s.authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		r = r.WithContext(withCaller(r.Context(), c))
		s.extendDeadlines(w, r)
		next.ServeHTTP(w, r)
		if !strings.HasSuffix(r.URL.Path, "/plan") || r.URL.Query().Get("index") == "" {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "caller", c.String(), "took", time.Since(start))
		}
	})
}

// forwardWait bounds how long a write waits for a leader during an
// election before it is refused with 503; forwardAttempt bounds one try,
// so that a leader that hangs (rather than dies) is given up on and the
// next one is tried. A hung leader is usually left sooner: the transport's
// HTTP/2 PINGs fail within about 4 s, and an attempt is abandoned as soon
// as Raft names another leader.
const (
	forwardWait    = 30 * time.Second
	forwardAttempt = 10 * time.Second
)

// forward sends a write to the leader (found through the gossip tags) and
// copies the answer back, naming the original caller. While there is no
// reachable leader (an election after the leader died) it retries until
// forwardWait passes; if this coordinator becomes the leader meanwhile, it
// returns false so the request is served here. Large bodies (module
// pushes) are streamed once, without retries.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	var body []byte
	retry := r.ContentLength >= 0 && r.ContentLength <= forwardBuffer
	if retry {
		b, err := io.ReadAll(io.LimitReader(r.Body, forwardBuffer+1))
		if err != nil {
			writeError(w, toAPIError(s.bodyError(fmt.Errorf("read request body: %w", err), bodyClassOf(r.Pattern))))
			return true
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	deadline := time.Now().Add(forwardWait)
	for {
		if s.raft.State() == raftLeader {
			return false
		}
		leader := s.leaderHTTP()
		if leader != "" {
			if !retry {
				s.proxy(leader).ServeHTTP(w, r)
				return true
			}
			ctx, cancel := context.WithTimeout(r.Context(), forwardAttempt)
			s.cancelOnLeaderChange(ctx, cancel)
			req, _ := http.NewRequestWithContext(ctx, r.Method, s.peerURL(leader, r.URL.RequestURI()), bytes.NewReader(body))
			req.Header = r.Header.Clone()
			s.setCaller(req, r)
			resp, err := s.pnet.forward.Do(req)
			if err == nil {
				defer cancel()
				defer resp.Body.Close()
				for k, v := range resp.Header {
					w.Header()[k] = v
				}
				w.WriteHeader(resp.StatusCode)
				io.Copy(w, resp.Body)
				return true
			}
			cancel()
			s.log.Debug("forward to leader failed, retrying", "leader", leader, "err", err)
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			writeError(w, &api.APIError{Code: http.StatusServiceUnavailable, Message: "no reachable cluster leader; retry in a moment"})
			return true
		}
		select {
		case <-r.Context().Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cancelOnLeaderChange cancels a forwarded attempt when Raft's view of
// the leader changes (an election after the leader hung): the attempt
// would wait for a coordinator that no longer leads.
func (s *Server) cancelOnLeaderChange(ctx context.Context, cancel context.CancelFunc) {
	was, _ := s.raft.LeaderWithID()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if now, _ := s.raft.LeaderWithID(); now != was {
					cancel()
					return
				}
			}
		}
	}()
}

// setCaller names the original caller on a request forwarded for r.
func (s *Server) setCaller(out, in *http.Request) {
	out.Header.Del(callerHeader)
	out.Header.Del(remoteHeader)
	out.Header.Del(keyHeader)
	c := callerOf(in)
	if !c.insecure {
		out.Header.Set(remoteHeader, c.remote)
		if c.key != "" {
			out.Header.Set(keyHeader, c.key)
		}
	}
	switch {
	case c.insecure:
	case c.anonymous:
		out.Header.Set(callerHeader, "anonymous")
	default:
		out.Header.Set(callerHeader, c.id.String())
	}
}

// proxy streams a request to another coordinator, naming the caller.
func (s *Server) proxy(httpAddr string) http.Handler {
	u, _ := url.Parse(s.peerURL(httpAddr, "/"))
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = s.pnet.transport
	inner := p.Director
	p.Director = func(req *http.Request) {
		inner(req)
		s.setCaller(req, req)
	}
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		writeError(w, &api.APIError{Code: http.StatusServiceUnavailable, Message: "forward to leader: " + err.Error()})
	}
	return p
}

// leaderHTTP is the leader's HTTP address, or "" when unknown.
func (s *Server) leaderHTTP() string {
	leaderRaft, _ := s.raft.LeaderWithID()
	if leaderRaft == "" {
		return ""
	}
	for _, p := range s.coordinators() {
		if p.RaftAddr == string(leaderRaft) {
			return p.HTTPAddr
		}
	}
	// Gossip may not show the leader yet (everyone just restarted): the
	// replicated directory knows it.
	for _, ci := range s.State().CoordinatorDirectory() {
		if ci.RaftAddr == string(leaderRaft) {
			return ci.HTTPAddr
		}
	}
	return ""
}

func (s *Server) wrap(a access, nf needFunc, body bodyClass, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.authorize(callerOf(r), a, r)
		if err == nil {
			r, err = s.checkACL(r, a, nf)
		}
		if err == errTokenNotFound && callerOf(r).via == "" && s.raft.State() != raftLeader && s.getPeers() != nil && s.forward(w, r) {
			return // a token this follower has not applied yet: the leader decides
		}
		if err != nil {
			ae := toAPIError(err)
			s.log.Warn("request refused", "code", ae.Code, "caller", callerOf(r).String(), "remote", callerOf(r).remote, "method", r.Method, "path", r.URL.Path, "reason", ae.Message)
			writeError(w, ae)
			return
		}
		// A body over its route's bound is refused here, before it is
		// read or forwarded, when its length is declared; otherwise reading
		// stops at the bound.
		if !s.limitBody(w, r, body) {
			s.log.Warn("request refused", "code", http.StatusRequestEntityTooLarge, "caller", callerOf(r).String(), "method", r.Method, "path", r.URL.Path, "reason", "body too large", "length", r.ContentLength)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasPrefix(r.URL.Path, "/v1/agent/") &&
			s.raft.State() != raftLeader && s.getPeers() != nil && !s.batchedHere(r) && s.forward(w, r) {
			return // recorded by the coordinator that ran it
		}
		if !audited(r, a) {
			if err := h(w, r); err != nil {
				writeError(w, toAPIError(s.bodyError(err, body)))
			}
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, &auditNote{}))
		if err := h(sw, r); err != nil {
			writeError(sw, toAPIError(s.bodyError(err, body)))
		}
		if worthRecording(sw.code) {
			s.record(r, sw.code)
		}
	})
}

func toAPIError(err error) *api.APIError {
	var ae *api.APIError
	var viol plan.Violations
	var derr *dsl.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &viol):
		return &api.APIError{Code: http.StatusUnprocessableEntity, Message: "plan has violations:\n" + viol.Error(), Details: []plan.Violation(viol)}
	case errors.As(err, &derr):
		return &api.APIError{Code: http.StatusBadRequest, Message: "module is invalid:\n" + derr.Error(), Details: derr.Diagnostics()}
	case errors.As(err, &mbe):
		return &api.APIError{Code: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, ErrNotFound):
		return &api.APIError{Code: http.StatusNotFound, Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return &api.APIError{Code: http.StatusConflict, Message: err.Error()}
	case errors.Is(err, ErrUnauthorized):
		return &api.APIError{Code: http.StatusForbidden, Message: err.Error()}
	case errors.Is(err, ErrTooMany):
		return &api.APIError{Code: http.StatusTooManyRequests, Message: err.Error()}
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrBadDigest):
		return &api.APIError{Code: http.StatusBadRequest, Message: err.Error()}
	case errors.Is(err, ErrNotLeader):
		return &api.APIError{Code: http.StatusServiceUnavailable, Message: err.Error() + "; retry in a moment"}
	default:
		return &api.APIError{Code: http.StatusInternalServerError, Message: err.Error()}
	}
}

func writeError(w http.ResponseWriter, e *api.APIError) {
	if e.Code == 0 {
		e.Code = http.StatusInternalServerError
	}
	writeJSON(w, e.Code, e)
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors. The route bounds the body's size (wrap).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("malformed request body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed request body: trailing data after the JSON object")
	}
	return nil
}

// blockingParams reads ?index=N&wait=D.
func blockingParams(r *http.Request) (index uint64, wait time.Duration, err error) {
	q := r.URL.Query()
	if v := q.Get("index"); v != "" {
		if index, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, badRequest("index must be a non-negative integer, got %q", v)
		}
	}
	wait = defaultWait
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			return 0, 0, badRequest("wait must be a duration such as 30s, got %q", v)
		}
	}
	return index, min(wait, maxWait), nil
}

// --- status ---

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	_, id := s.raft.LeaderWithID()
	configured := false
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		configured = len(f.Configuration().Servers) > 0
	}
	return writeJSON(w, http.StatusOK, api.StatusResponse{
		Name: s.cfg.Name, Version: s.cfg.Version, Leader: string(id),
		IsLeader: s.raft.State() == raftLeader, Index: s.State().Index(), RaftAddr: s.raftAddr,
		RaftConfigured: configured, PlanPolls: s.planPolls.Load(),
	})
}

// --- modules ---

func (s *Server) pushModule(w http.ResponseWriter, r *http.Request) error {
	if az := authz(r); az != nil && !az.MayWriteSomeModule() {
		return &api.APIError{Code: http.StatusForbidden, Message: "permission denied: " + az.Name + " lacks module write (on any module)"}
	}
	// The body is bounded by limits.module_packed_bytes (wrap).
	digest, size, err := s.blobs.Put(r.Body, r.Header.Get("X-Dtk-Digest"))
	if err != nil {
		return err
	}
	// A refused push takes its blob back (GET /v1/blobs would serve it,
	// with no module using it), unless a recorded module uses the same
	// archive or another push of it is under way here.
	blob, _ := s.blobs.path(digest)
	pushesInFlight.Lock()
	pushesInFlight.n[blob]++
	pushesInFlight.Unlock()
	refused := true
	defer func() {
		pushesInFlight.Lock()
		defer pushesInFlight.Unlock()
		if pushesInFlight.n[blob]--; pushesInFlight.n[blob] > 0 {
			return
		}
		delete(pushesInFlight.n, blob)
		if !refused {
			return
		}
		for _, m := range s.State().Modules() {
			if m.Digest == digest {
				return
			}
		}
		if err := os.Remove(blob); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing the blob of a refused push", "digest", digest, "err", err)
		}
	}()
	mod, sig, err := s.loadModule(digest, s.moduleTrust())
	if err != nil {
		return err
	}
	if err := allow(r, acl.Need{Kind: acl.KindModule, Name: mod.Name, Level: acl.Write}); err != nil {
		return err
	}
	if err := s.verifyModuleSig(mod, sig); err != nil {
		return err
	}
	mod.Digest, mod.Size = digest, size
	// A quorum of coordinators holds the blob before the module is
	// recorded, so an acknowledged push survives losing any minority of
	// them (the coordinator that took it included).
	if err := s.replicateBlob(r.Context(), digest); err != nil {
		return &api.APIError{Code: http.StatusServiceUnavailable, Message: err.Error() + "; push again when the coordinators are reachable"}
	}
	resp, err := s.apply(PutModuleType, PutModuleCmd{Module: *mod})
	// A conflict is a refusal; after any other failure the module may still
	// be recorded, so the blob stays.
	refused = errors.Is(err, ErrConflict)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

// pushesInFlight counts the module pushes under way by blob file, so that
// a refused push does not remove a blob another push of the same archive
// is using.
var pushesInFlight = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// loadModule unpacks a stored archive into a scratch folder and parses it.
func (s *Server) loadModule(digest string, trust *ModuleTrust) (*plan.Module, *moduleSig, error) {
	f, err := s.blobs.Open(digest)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return s.parseModule(f, trust)
}

// parseModule unpacks a module archive into a scratch folder and parses
// it. When trust checks signatures it also returns what checking the
// module's signature needs (verifyModuleSig), else nil.
func (s *Server) parseModule(f io.Reader, trust *ModuleTrust) (*plan.Module, *moduleSig, error) {
	dir, err := os.MkdirTemp(s.cfg.DataDir, "module-*")
	if err != nil {
		return nil, nil, fmt.Errorf("scratch folder: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := s.archiveLimits().Unpack(f, dir); err != nil {
		return nil, nil, archiveError(err)
	}
	mod, err := dsl.LoadWithin(dir, s.dslLimits())
	if err != nil {
		return nil, nil, err
	}
	sig, err := readModuleSig(dir, mod, trust)
	if err != nil {
		return nil, nil, err
	}
	return mod, sig, nil
}

func (s *Server) listModules(w http.ResponseWriter, r *http.Request) error {
	mods := []*plan.Module{}
	for _, m := range s.State().Modules() {
		if canRead(r, acl.KindModule, m.Name) {
			mods = append(mods, m)
		}
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(mods))
}

func (s *Server) getModule(w http.ResponseWriter, r *http.Request) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	var m *plan.Module
	if version == "latest" {
		m = s.State().LatestModule(name)
	} else {
		m = s.State().Module(name, version)
	}
	if m == nil {
		return fmt.Errorf("%w: module %s@%s", ErrNotFound, name, version)
	}
	return writeJSON(w, http.StatusOK, redactModule(m))
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) error {
	digest := r.PathValue("digest")
	q := r.URL.Query()
	if q.Get("local") == "" {
		// Read through: a blob pushed through another coordinator is
		// fetched from it (and verified) on first use; a coordinator
		// asking us to hold a blob (?ensure) names itself in ?from.
		if err := s.ensureBlob(r.Context(), digest, q.Get("from")); err != nil {
			return err
		}
	}
	if q.Get("ensure") != "" {
		return writeJSON(w, http.StatusOK, map[string]string{"digest": digest})
	}
	f, err := s.blobs.Open(digest)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: blob %s", ErrNotFound, r.PathValue("digest"))
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.HTTPTimeouts.Write + transferTime(fi.Size(), fi.Size())))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = io.Copy(w, f)
	if err != nil {
		s.log.Warn("send blob", "err", err)
	}
	return nil
}

// --- services ---

func (s *Server) stageService(w http.ResponseWriter, r *http.Request) error {
	var req api.StageRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := checkName("service", req.Name); err != nil {
		return err
	}
	modRef, tmpl, ok := strings.Cut(req.Template, "/")
	if !ok || modRef == "" || tmpl == "" {
		return badRequest("template must be MODULE/TEMPLATE or MODULE@VERSION/TEMPLATE, got %q", req.Template)
	}
	modName, version, _ := strings.Cut(modRef, "@")
	// A service staged under a parent needs only read on the parent.
	needs := []acl.Need{{Kind: acl.KindService, Name: req.Name, Level: acl.Write}, {Kind: acl.KindModule, Name: modName, Level: acl.Read}}
	if req.Parent != "" {
		needs = append(needs, acl.Need{Kind: acl.KindService, Name: req.Parent, Level: acl.Read})
	}
	if err := allow(r, needs...); err != nil {
		return err
	}
	noteService(r, req.Name)
	var mod *plan.Module
	if version == "" {
		mod = s.State().LatestModule(modName)
	} else {
		mod = s.State().Module(modName, version)
	}
	if mod == nil {
		return fmt.Errorf("%w: module %s is not pushed (dtkctl module list shows what is)", ErrNotFound, modRef)
	}
	lock, err := s.resolveLock(mod)
	if err != nil {
		return err
	}
	resp, err := s.apply(StageServiceType, StageServiceCmd{
		Name: req.Name, Module: mod.Name, Version: mod.Version, Template: tmpl,
		Parent: req.Parent, Inputs: req.Inputs, Lock: lock, Time: time.Now().UnixMilli(), Caller: callerFor(r),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

// resolveLock picks, for every module a module requires, the highest
// pushed version that meets the constraint.
func (s *Server) resolveLock(mod *plan.Module) (map[string]string, error) {
	if len(mod.Requires) == 0 {
		return nil, nil
	}
	lock := map[string]string{}
	for _, req := range mod.Requires {
		var best string
		for _, m := range s.State().Modules() {
			if m.Name != req.Name {
				continue
			}
			ok, err := plan.MatchConstraint(m.Version, req.Version)
			if err != nil {
				return nil, badRequest("module %s requires %s %q: %v", mod.Ref(), req.Name, req.Version, err)
			}
			if ok && (best == "" || plan.CompareVersions(m.Version, best) > 0) {
				best = m.Version
			}
		}
		if best == "" {
			return nil, fmt.Errorf("%w: module %s requires %s %s, and no pushed version matches (dtkctl module push it first)", ErrNotFound, mod.Ref(), req.Name, req.Version)
		}
		lock[req.Name] = best
	}
	return lock, nil
}

// upgradeService moves a service to another version of its module (the
// highest pushed one when none is named); deploy then re-runs what changed.
func (s *Server) upgradeService(w http.ResponseWriter, r *http.Request) error {
	var req api.UpgradeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	svc := s.State().Service(r.PathValue("name"))
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, r.PathValue("name"))
	}
	var mod *plan.Module
	if req.Version == "" {
		mod = s.State().LatestModule(svc.Module)
	} else {
		mod = s.State().Module(svc.Module, req.Version)
	}
	if mod == nil {
		return fmt.Errorf("%w: module %s@%s is not pushed", ErrNotFound, svc.Module, req.Version)
	}
	lock, err := s.resolveLock(mod)
	if err != nil {
		return err
	}
	resp, err := s.apply(StageServiceType, StageServiceCmd{
		Name: svc.Name, Module: mod.Name, Version: mod.Version, Template: svc.Template,
		Parent: svc.Parent, Lock: lock, Time: time.Now().UnixMilli(), Upgrade: true, Caller: callerFor(r),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	out := []api.ServiceSummary{}
	for _, svc := range s.State().Services() {
		if !canRead(r, acl.KindService, svc.Name) {
			continue
		}
		out = append(out, api.ServiceSummary{Name: svc.Name, State: svc.State, Generation: svc.Generation, Module: svc.Module, Version: svc.Version, Template: svc.Template, Parent: svc.Parent, Stale: svc.Stale})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Has("index") {
		done, stop := waitDone(r, wait)
		defer stop()
		s.State().WaitService(done, name, index)
	}
	st := s.State().Status(name)
	if st == nil {
		w.Header().Set(IndexHeader, strconv.FormatUint(s.State().Index(), 10))
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(st.Index, 10))
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) previewPlan(w http.ResponseWriter, r *http.Request) error {
	// ?pending=false: against the ancestors as deployed, leaving out
	// their staged changes.
	pv := s.State().PreviewPending(r.PathValue("name"), r.URL.Query().Get("pending") != "false")
	if pv == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, r.PathValue("name"))
	}
	return writeJSON(w, http.StatusOK, pv)
}

func (s *Server) setInputs(w http.ResponseWriter, r *http.Request) error {
	var req api.InputsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	resp, err := s.apply(SetInputsType, SetInputsCmd{Name: r.PathValue("name"), Inputs: req.Inputs, Time: time.Now().UnixMilli(), Caller: callerFor(r)})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

func (s *Server) deployService(w http.ResponseWriter, r *http.Request) error {
	names := []string{r.PathValue("name")}
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "1"
	if recursive {
		// Deploying the services below needs deploy on each of them too
		// (cascade.go deploys them as this caller).
		for _, child := range s.State().Descendants(r.PathValue("name")) {
			if err := allow(r, acl.Need{Kind: acl.KindService, Name: child, Level: acl.Deploy}); err != nil {
				return err
			}
			names = append(names, child)
		}
	}
	seen := map[string]bool{}
	for _, name := range names {
		if svc := s.State().Service(name); svc != nil {
			if m := s.State().Module(svc.Module, svc.Version); m != nil && m.Digest != "" && !seen[m.Digest] {
				seen[m.Digest] = true
				if err := s.replicateBlob(r.Context(), m.Digest); err != nil {
					return &api.APIError{Code: http.StatusServiceUnavailable, Message: err.Error() + "; retry when the coordinators are reachable"}
				}
			}
		}
	}
	var req api.DeployRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	if err := req.Rollout.Validate(); err != nil {
		return badRequest("%v", err)
	}
	if err := checkParts(&req, recursive); err != nil {
		return err
	}
	resp, err := s.applyDeploy(DeployServiceCmd{Name: r.PathValue("name"), Rollout: req.Rollout, Time: time.Now().UnixMilli(), Recursive: recursive, Caller: callerFor(r),
		Force: req.Force, Restore: req.Restore})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().DeployAnswer(resp))
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	recursive := q.Get("recursive") == "true" || q.Get("recursive") == "1"
	if recursive {
		// Deleting children needs write on each of them too.
		for _, child := range s.State().Descendants(r.PathValue("name")) {
			if err := allow(r, acl.Need{Kind: acl.KindService, Name: child, Level: acl.Write}); err != nil {
				return err
			}
		}
	}
	resp, err := s.apply(DeleteServiceType, DeleteServiceCmd{
		Name: r.PathValue("name"), Node: q.Get("node"), Component: q.Get("component"), Recursive: recursive,
		Time: time.Now().UnixMilli(), Caller: callerFor(r),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

// --- nodes ---

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.State().Nodes())
}

func (s *Server) registerNode(w http.ResponseWriter, r *http.Request) error {
	var n plan.Node
	if err := decode(w, r, &n); err != nil {
		return err
	}
	if n.Name == "" {
		n.Name = r.PathValue("name")
	}
	if n.Name != r.PathValue("name") {
		return badRequest("node name %q in body differs from %q in path", n.Name, r.PathValue("name"))
	}
	if err := checkName("node", n.Name); err != nil {
		return err
	}
	if err := s.checkLabels(n.Labels); err != nil {
		return err
	}
	// A node states only its own labels; the operator's are kept by the
	// state.
	n.AgentLabels, n.OperatorLabels = nil, nil
	resp, err := s.apply(RegisterNodeType, RegisterNodeCmd{Node: n, Time: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

// nodePlan is the agents' blocking query: it answers as soon as the node's
// slice index passes ?index, or when ?wait runs out.
func (s *Server) nodePlan(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	if s.State().Node(name) == nil {
		return fmt.Errorf("%w: node %q is not registered", ErrNotFound, name)
	}
	s.planPolls.Add(1)
	defer s.planPolls.Add(-1)
	done, stop := waitDone(r, wait)
	defer stop()
	sl := s.State().WaitSlice(done, name, index)
	if err := s.stillAllowed(r); err != nil {
		return err
	}
	if s.State().Node(name) == nil {
		return fmt.Errorf("%w: node %q was removed", ErrNotFound, name)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(sl.Index, 10))
	// Sensitive values go in clear to the node itself only.
	if !callerOf(r).isNode(name) {
		sl = redactSlice(sl)
	}
	return writeJSON(w, http.StatusOK, sl)
}

func (s *Server) nodeReports(w http.ResponseWriter, r *http.Request) error {
	var req api.ReportsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	for i := range req.Reports {
		if req.Reports[i].Node != name {
			return badRequest("report %d is for node %q, not %q", i, req.Reports[i].Node, name)
		}
	}
	s.cutReports(req.Reports)
	var (
		n     int
		index uint64
		err   error
	)
	if s.raft.State() != raftLeader && s.getPeers() != nil {
		// wrap let it through: the leader takes a follower's batches.
		n, index, err = s.forwarder.submit(r.Context(), req.Reports, r.ContentLength)
	} else {
		n, index, err = s.batcher.submit(r.Context(), req.Reports)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ReportsResponse{Applied: n, Index: index})
}
