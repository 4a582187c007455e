package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// Access control with tokens and policies (docs/security.md). With
// Config.ACLEnabled, every operator request carries a token
// (api.TokenHeader); the middleware turns it into an acl.Authorizer once,
// each route names the rights it needs, and handlers that learn a name only
// from the body (module push, stage) or list things (filters) ask the
// authorizer in the request's context. Coordinators themselves (server
// certificates) may do everything; agents (node certificates) are bound by
// their certificate's node-scoped access and need no token.

// aclData is the ACL part of the replicated state.
type aclData struct {
	Bootstrapped bool                      `json:"bootstrapped"`
	Policies     map[string]*api.ACLPolicy `json:"policies"`
	// Tokens by accessor; only a hash of each secret is kept.
	Tokens map[string]*api.ACLToken `json:"tokens"`
}

func (a *aclData) fill() {
	if a.Policies == nil {
		a.Policies = map[string]*api.ACLPolicy{}
	}
	if a.Tokens == nil {
		a.Tokens = map[string]*api.ACLToken{}
	}
}

// Limits.
const (
	maxACLTokens   = 10000
	maxACLPolicies = 1000
	maxTokenHeader = 512
)

// ACL commands.
type (
	// ACLBootstrapCmd makes the first management token, once.
	ACLBootstrapCmd struct {
		Token api.ACLToken `json:"token"`
	}
	// ACLPolicyCmd creates or replaces a policy.
	ACLPolicyCmd struct {
		Policy api.ACLPolicy `json:"policy"`
	}
	// ACLDeletePolicyCmd deletes a policy.
	ACLDeletePolicyCmd struct {
		Name string `json:"name"`
	}
	// ACLTokenCmd creates a token.
	ACLTokenCmd struct {
		Token api.ACLToken `json:"token"`
	}
	// ACLDeleteTokenCmd deletes a token.
	ACLDeleteTokenCmd struct {
		AccessorID string `json:"accessor_id"`
	}
)

func aclKey() string { return "acl" }

func (s *State) aclBootstrap(idx uint64, c *ACLBootstrapCmd) (any, []string) {
	a := &s.data.ACL
	if a.Bootstrapped {
		return fmt.Errorf("%w: ACLs are already bootstrapped; use a management token (dtkctl acl token create --management)", ErrConflict), nil
	}
	t := c.Token
	t.CreateIndex, t.Management = idx, true
	a.Bootstrapped = true
	a.Tokens[t.AccessorID] = &t
	return t.Public(), []string{aclKey()}
}

func (s *State) aclPolicy(idx uint64, c *ACLPolicyCmd) (any, []string) {
	a := &s.data.ACL
	p := c.Policy
	old := a.Policies[p.Name]
	if old == nil && len(a.Policies) >= maxACLPolicies {
		return fmt.Errorf("%w: %d policies exist", ErrTooMany, len(a.Policies)), nil
	}
	p.ModifyIndex, p.CreateIndex = idx, idx
	if old != nil {
		p.CreateIndex = old.CreateIndex
	}
	a.Policies[p.Name] = &p
	return &p, []string{aclKey()}
}

func (s *State) aclDeletePolicy(idx uint64, c *ACLDeletePolicyCmd) (any, []string) {
	a := &s.data.ACL
	if a.Policies[c.Name] == nil {
		return fmt.Errorf("%w: ACL policy %q", ErrNotFound, c.Name), nil
	}
	for _, t := range a.Tokens {
		if slices.Contains(t.Policies, c.Name) {
			return fmt.Errorf("%w: token %s uses policy %q; delete the tokens that use it first (dtkctl acl token list)", ErrConflict, t.AccessorID, c.Name), nil
		}
	}
	delete(a.Policies, c.Name)
	return map[string]string{"deleted": c.Name}, []string{aclKey()}
}

func (s *State) aclToken(idx uint64, c *ACLTokenCmd) (any, []string) {
	a := &s.data.ACL
	// Tokens expired for a day go (the new token's creation time is the
	// clock, so every replica drops the same ones).
	for id, t := range a.Tokens {
		if t.ExpiresMS != 0 && t.ExpiresMS+pendingKeep < c.Token.CreatedMS {
			delete(a.Tokens, id)
		}
	}
	if len(a.Tokens) >= maxACLTokens {
		return fmt.Errorf("%w: %d tokens exist", ErrTooMany, len(a.Tokens)), nil
	}
	for _, p := range c.Token.Policies {
		if a.Policies[p] == nil {
			return fmt.Errorf("%w: ACL policy %q (dtkctl acl policy list)", ErrNotFound, p), nil
		}
	}
	t := c.Token
	t.CreateIndex = idx
	a.Tokens[t.AccessorID] = &t
	return t.Public(), []string{aclKey()}
}

func (s *State) aclDeleteToken(idx uint64, c *ACLDeleteTokenCmd) (any, []string) {
	a := &s.data.ACL
	if a.Tokens[c.AccessorID] == nil {
		return fmt.Errorf("%w: ACL token %q", ErrNotFound, c.AccessorID), nil
	}
	delete(a.Tokens, c.AccessorID)
	return map[string]string{"deleted": c.AccessorID}, []string{aclKey()}
}

// ACLTokenByHash finds a token (a copy) by the hash of its secret.
func (s *State) ACLTokenByHash(hash string) *api.ACLToken {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The accessor is the hash's first 16 digits: one map lookup.
	if len(hash) < 16 {
		return nil
	}
	t := s.data.ACL.Tokens[hash[:16]]
	if t == nil || subtle.ConstantTimeCompare([]byte(t.SecretHash), []byte(hash)) != 1 {
		return nil
	}
	c := *t
	c.Policies = slices.Clone(t.Policies)
	return &c
}

// ACLPolicies lists policies (copies), by name.
func (s *State) ACLPolicies() []api.ACLPolicy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.ACLPolicy, 0, len(s.data.ACL.Policies))
	for _, p := range sortedValues(s.data.ACL.Policies) {
		out = append(out, *p)
	}
	return out
}

// ACLPolicy is one policy (a copy), or nil.
func (s *State) ACLPolicy(name string) *api.ACLPolicy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.data.ACL.Policies[name]; p != nil {
		c := *p
		return &c
	}
	return nil
}

// ACLTokens lists tokens without secrets, oldest first.
func (s *State) ACLTokens() []api.ACLToken {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.ACLToken, 0, len(s.data.ACL.Tokens))
	for _, t := range s.data.ACL.Tokens {
		c := t.Public()
		c.Policies = slices.Clone(t.Policies)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// --- resolving a request's rights ---

// needFunc names the rights a route needs for one request; nil needs none
// beyond a valid token (the handler checks the rest).
type needFunc func(r *http.Request) []acl.Need

func need(kind string, lvl acl.Level) needFunc {
	return func(*http.Request) []acl.Need { return []acl.Need{{Kind: kind, Level: lvl}} }
}

func needService(lvl acl.Level) needFunc {
	return func(r *http.Request) []acl.Need {
		return []acl.Need{{Kind: acl.KindService, Name: r.PathValue("name"), Level: lvl}}
	}
}

func needModule(lvl acl.Level) needFunc {
	return func(r *http.Request) []acl.Need {
		return []acl.Need{{Kind: acl.KindModule, Name: r.PathValue("name"), Level: lvl}}
	}
}

type authzKey struct{}

// authz is the request's authorizer, or nil when ACLs are off (or the
// caller is an agent, bound by its certificate).
func authz(r *http.Request) *acl.Authorizer {
	a, _ := r.Context().Value(authzKey{}).(*acl.Authorizer)
	return a
}

// allow checks rights a handler learned from the request body.
func allow(r *http.Request, needs ...acl.Need) error {
	a := authz(r)
	if a == nil {
		return nil
	}
	for _, n := range needs {
		if err := a.Check(n); err != nil {
			return &api.APIError{Code: http.StatusForbidden, Message: err.Error()}
		}
	}
	return nil
}

// canRead filters lists.
func canRead(r *http.Request, kind, name string) bool {
	a := authz(r)
	return a == nil || a.Allowed(acl.Need{Kind: kind, Name: name, Level: acl.Read})
}

// requestToken is the token a request carries ("" for none).
func requestToken(r *http.Request) string {
	if t := r.Header.Get(api.TokenHeader); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return t
		}
		return "\x00" // a malformed Authorization header never passes
	}
	return ""
}

// policyCache keeps parsed policies by name and modify index.
type policyCache struct {
	mu sync.Mutex
	m  map[string]cachedPolicy
}

type cachedPolicy struct {
	index  uint64
	policy *acl.Policy
}

func (s *Server) parsedPolicy(p api.ACLPolicy) (*acl.Policy, error) {
	s.policies.mu.Lock()
	defer s.policies.mu.Unlock()
	if c, ok := s.policies.m[p.Name]; ok && c.index == p.ModifyIndex {
		return c.policy, nil
	}
	pol, err := acl.Parse([]byte(p.Rules), p.Name)
	if err != nil {
		return nil, err
	}
	if s.policies.m == nil || len(s.policies.m) > maxACLPolicies {
		s.policies.m = map[string]cachedPolicy{}
	}
	s.policies.m[p.Name] = cachedPolicy{p.ModifyIndex, pol}
	return pol, nil
}

// resolveACL builds the authorizer of an operator request from its token,
// read from the replicated state on every request: a deleted or expired
// token stops working at once, on every coordinator.
func (s *Server) resolveACL(r *http.Request, c caller) (*acl.Authorizer, error) {
	if c.id.Role == tlsutil.RoleServer && c.via == "" {
		return acl.Manager(c.id.String()), nil
	}
	secretText := requestToken(r)
	if secretText == "" {
		return nil, &api.APIError{Code: http.StatusUnauthorized, Message: "ACLs are on: this request needs a token (dtkctl --token or $DTK_TOKEN; the first one comes from dtkctl acl bootstrap)"}
	}
	if len(secretText) > maxTokenHeader {
		return nil, &api.APIError{Code: http.StatusUnauthorized, Message: "ACL token refused: longer than any token"}
	}
	t := s.State().ACLTokenByHash(TokenHash(secretText))
	if t == nil {
		return nil, errTokenNotFound
	}
	if t.ExpiresMS != 0 && nowMS() >= t.ExpiresMS {
		return nil, &api.APIError{Code: http.StatusUnauthorized, Message: fmt.Sprintf("ACL token %s expired at %s", t.AccessorID, time.UnixMilli(t.ExpiresMS).UTC().Format(time.RFC3339))}
	}
	name := "token " + t.AccessorID
	if t.Description != "" {
		name += " (" + t.Description + ")"
	}
	if t.Management {
		return acl.Manager(name), nil
	}
	var pols []*acl.Policy
	for _, pn := range t.Policies {
		p := s.State().ACLPolicy(pn)
		if p == nil {
			continue // deleted since: grants nothing
		}
		pol, err := s.parsedPolicy(*p)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", pn, err)
		}
		pols = append(pols, pol)
	}
	return acl.NewAuthorizer(name, pols...), nil
}

// checkACL runs in front of a route when ACLs are on. It returns the
// request with its authorizer attached.
func (s *Server) checkACL(r *http.Request, a access, nf needFunc) (*http.Request, error) {
	c := callerOf(r)
	// accessAny (GET /v1/status: leader, index, version) needs a
	// certificate but no token, as health checks do.
	if !s.cfg.ACLEnabled || a == accessPublic || a == accessAny || a == accessServer || a == accessBootstrap || c.id.Role == tlsutil.RoleNode {
		return r, nil
	}
	az, err := s.resolveACL(r, c)
	if err != nil {
		return r, err
	}
	if nf != nil {
		for _, n := range nf(r) {
			if err := az.Check(n); err != nil {
				return r, &api.APIError{Code: http.StatusForbidden, Message: err.Error()}
			}
		}
	}
	return r.WithContext(context.WithValue(r.Context(), authzKey{}, az)), nil
}

// errTokenNotFound: a follower that does not know a token yet (it was
// just made) lets the leader decide.
var errTokenNotFound = &api.APIError{Code: http.StatusUnauthorized, Message: "ACL token not found: it was deleted, or belongs to another cluster"}

// --- endpoints ---

func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "dtkacl-" + hex.EncodeToString(b), nil
}

func newACLToken(desc string, policies []string, management bool, ttl time.Duration) (api.ACLToken, error) {
	secretText, err := newSecret()
	if err != nil {
		return api.ACLToken{}, err
	}
	hash := TokenHash(secretText)
	t := api.ACLToken{AccessorID: hash[:16], SecretID: secretText, SecretHash: hash, Description: desc,
		Policies: policies, Management: management, CreatedMS: nowMS()}
	if ttl > 0 {
		t.ExpiresMS = t.CreatedMS + ttl.Milliseconds()
	}
	return t, nil
}

func (s *Server) aclBootstrap(w http.ResponseWriter, r *http.Request) error {
	if !s.cfg.ACLEnabled {
		return &api.APIError{Code: http.StatusConflict, Message: "ACLs are off on this coordinator: start the coordinators with acl { enabled = true } (--acl-enabled)"}
	}
	t, err := newACLToken("bootstrap management token", nil, true, 0)
	if err != nil {
		return err
	}
	cmd := ACLBootstrapCmd{Token: t}
	cmd.Token.SecretID = "" // the log keeps the hash only
	if _, err := s.apply(ACLBootstrapType, cmd); err != nil {
		return err
	}
	s.log.Info("ACLs bootstrapped", "accessor", t.AccessorID, "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, api.ACLToken{AccessorID: t.AccessorID, SecretID: t.SecretID, Description: t.Description, Management: true, CreatedMS: t.CreatedMS})
}

func (s *Server) aclListPolicies(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.State().ACLPolicies())
}

func (s *Server) aclGetPolicy(w http.ResponseWriter, r *http.Request) error {
	if p := s.State().ACLPolicy(r.PathValue("name")); p != nil {
		return writeJSON(w, http.StatusOK, p)
	}
	return fmt.Errorf("%w: ACL policy %q", ErrNotFound, r.PathValue("name"))
}

func (s *Server) aclPutPolicy(w http.ResponseWriter, r *http.Request) error {
	var p api.ACLPolicy
	if err := decode(w, r, &p); err != nil {
		return err
	}
	if p.Name == "" {
		p.Name = r.PathValue("name")
	}
	if p.Name != r.PathValue("name") {
		return badRequest("policy name %q in body differs from %q in path", p.Name, r.PathValue("name"))
	}
	if err := checkName("policy", p.Name); err != nil {
		return err
	}
	if len(p.Description) > 1024 {
		return badRequest("description is longer than 1024 bytes")
	}
	if _, err := acl.Parse([]byte(p.Rules), p.Name); err != nil {
		return badRequest("rules: %v", err)
	}
	resp, err := s.apply(ACLPolicyType, ACLPolicyCmd{Policy: api.ACLPolicy{Name: p.Name, Description: p.Description, Rules: p.Rules}})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) aclDeletePolicy(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.apply(ACLDeletePolicyType, ACLDeletePolicyCmd{Name: r.PathValue("name")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

func (s *Server) aclListTokens(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.State().ACLTokens())
}

func (s *Server) aclGetToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "self" {
		t := s.State().ACLTokenByHash(TokenHash(requestToken(r)))
		if t == nil {
			return fmt.Errorf("%w: this request carries no ACL token", ErrNotFound)
		}
		return writeJSON(w, http.StatusOK, t.Public())
	}
	if err := allow(r, acl.Need{Kind: acl.KindACL, Level: acl.Read}); err != nil {
		return err
	}
	for _, t := range s.State().ACLTokens() {
		if t.AccessorID == id {
			return writeJSON(w, http.StatusOK, t)
		}
	}
	return fmt.Errorf("%w: ACL token %q", ErrNotFound, id)
}

func (s *Server) aclCreateToken(w http.ResponseWriter, r *http.Request) error {
	var req api.ACLTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < 0 {
			return badRequest("ttl must be a duration such as 720h, got %q", req.TTL)
		}
		ttl = d
	}
	if len(req.Description) > 1024 || len(req.Policies) > 64 {
		return badRequest("description longer than 1024 bytes or more than 64 policies")
	}
	if az := authz(r); req.Management && az != nil && !az.Management {
		return &api.APIError{Code: http.StatusForbidden, Message: "only a management token may create a management token"}
	}
	if !req.Management && len(req.Policies) == 0 {
		return badRequest("a token needs at least one policy (--policy NAME), or --management")
	}
	t, err := newACLToken(req.Description, req.Policies, req.Management, ttl)
	if err != nil {
		return err
	}
	cmd := ACLTokenCmd{Token: t}
	cmd.Token.SecretID = ""
	if _, err := s.apply(ACLTokenType, cmd); err != nil {
		return err
	}
	out := t
	out.SecretHash = ""
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) aclDeleteToken(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.apply(ACLDeleteTokenType, ACLDeleteTokenCmd{AccessorID: r.PathValue("id")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// needBlob: an operator reads a blob with read on the module it belongs to
// (operator read for a blob no module names).
func (s *Server) needBlob(r *http.Request) []acl.Need {
	d := r.PathValue("digest")
	for _, m := range s.State().Modules() {
		if m.Digest == d {
			return []acl.Need{{Kind: acl.KindModule, Name: m.Name, Level: acl.Read}}
		}
	}
	return []acl.Need{{Kind: acl.KindOperator, Level: acl.Read}}
}

// needOp: reading an operation needs read on its service.
func (s *Server) needOp(r *http.Request) []acl.Need {
	op := s.State().Op(r.PathValue("id"))
	if op == nil {
		return nil // the handler answers 404
	}
	return []acl.Need{{Kind: acl.KindService, Name: op.Service, Level: acl.Read}}
}

// Descendants lists the services staged under name, at any depth.
func (s *State) Descendants(name string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	frontier := []string{name}
	for len(frontier) > 0 {
		var next []string
		for _, svc := range s.data.Services {
			if slices.Contains(frontier, svc.Parent) && svc.Name != name && !slices.Contains(out, svc.Name) {
				out = append(out, svc.Name)
				next = append(next, svc.Name)
			}
		}
		frontier = next
	}
	sort.Strings(out)
	return out
}
