package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/plan"
)

// The replicated part of the cluster's trust: join tokens, enrollment
// requests waiting for an operator, the certificates enrollment issued,
// revocations, and the cluster CA (its key sealed with the coordinators'
// key-encryption key; never in clear in the log or a snapshot).

// Limits on what unauthenticated callers can make the state hold.
const (
	maxPending = 256
	maxTokens  = 1024
	// pendingKeep is how long a pending, approved or rejected request is
	// kept (ms) before the next trust command prunes it.
	pendingKeep = 24 * 60 * 60 * 1000
)

// trustData is the trust part of stateData.
type trustData struct {
	// Tokens by ID. Only a hash of each token's secret is kept.
	Tokens map[string]*api.JoinToken `json:"tokens"`
	// Pending enrollment requests by node name.
	Pending map[string]*api.PendingNode `json:"pending"`
	// Enrolled holds the certificate enrollment issued per node name.
	Enrolled map[string]*Enrollment `json:"enrolled"`
	// Revoked certificate serials (hex) → the certificate's expiry (ms), so
	// that entries can be dropped once the certificate expires on its own.
	Revoked map[string]int64 `json:"revoked"`
	// Removed node names → the time (ms) of removal: any node certificate
	// for that name issued (NotBefore) at or before then is refused, which
	// also covers certificates made offline with `dtk-agent tls cert`.
	Removed map[string]int64 `json:"removed"`
	// CACert is the cluster CA certificate (PEM) whose key CAKey holds,
	// sealed with the key-encryption key.
	CACert string `json:"ca_cert,omitempty"`
	CAKey  string `json:"ca_key_sealed,omitempty"`
}

func newTrustData() trustData {
	return trustData{
		Tokens: map[string]*api.JoinToken{}, Pending: map[string]*api.PendingNode{},
		Enrolled: map[string]*Enrollment{}, Revoked: map[string]int64{}, Removed: map[string]int64{},
	}
}

// fill replaces nil maps (a snapshot from before trust existed).
func (t *trustData) fill() {
	n := newTrustData()
	if t.Tokens == nil {
		t.Tokens = n.Tokens
	}
	if t.Pending == nil {
		t.Pending = n.Pending
	}
	if t.Enrolled == nil {
		t.Enrolled = n.Enrolled
	}
	if t.Revoked == nil {
		t.Revoked = n.Revoked
	}
	if t.Removed == nil {
		t.Removed = n.Removed
	}
}

// Enrollment is a certificate issued to a node by enrollment.
type Enrollment struct {
	Name   string `json:"name"`
	Serial string `json:"serial"`
	// PublicKey is the sha256 fingerprint of the certified public key: the
	// same agent asking again (a lost answer) gets its certificate again.
	PublicKey string `json:"public_key"`
	NotAfter  int64  `json:"not_after_ms"`
	Time      int64  `json:"time_ms"`
	// Via is "token:ID" or "approved".
	Via string `json:"via"`
	// Labels are operator labels the token carried; the node gets them
	// when it registers.
	Labels map[string]string `json:"labels,omitempty"`
	// CertPEM is the certificate itself (public), handed again to the same
	// agent asking again with the same token and key (a lost answer).
	CertPEM string `json:"cert_pem,omitempty"`
}

// Trust commands.
type (
	// CreateTokenCmd records a join token (its secret hashed).
	CreateTokenCmd struct {
		Token api.JoinToken `json:"token"`
		Time  int64         `json:"time_ms"`
	}
	// DeleteTokenCmd revokes a join token.
	DeleteTokenCmd struct {
		ID string `json:"id"`
	}
	// EnrollCmd records a certificate the leader issued: through a token
	// (TokenID set: one use is taken, refused if none is left) or an
	// operator's approval of a pending request.
	EnrollCmd struct {
		Enrollment Enrollment `json:"enrollment"`
		TokenID    string     `json:"token_id,omitempty"`
		CertPEM    string     `json:"cert_pem"`
		// Renew: a node renewing its own certificate (same key); the one
		// it replaces stays valid until it expires.
		Renew bool `json:"renew,omitempty"`
	}
	// PendingCmd records an enrollment request without a token.
	PendingCmd struct {
		Request api.PendingNode `json:"request"`
	}
	// RejectCmd refuses a pending request.
	RejectCmd struct {
		Name string `json:"name"`
		Time int64  `json:"time_ms"`
	}
	// RemoveNodeCmd revokes a node's certificates and forgets the node,
	// or, with Collect, only forgets it (garbage collection of a node down
	// for long: it may come back and register again).
	RemoveNodeCmd struct {
		Name    string `json:"name"`
		Time    int64  `json:"time_ms"`
		Collect bool   `json:"collect,omitempty"`
		// DownBefore (with Collect): collect only if the node is still
		// down and was last seen before this time (ms), so that a node
		// that came back between the leader's look and the entry stays.
		DownBefore int64 `json:"down_before_ms,omitempty"`
	}
	// PutCACmd stores the cluster CA (its key sealed).
	PutCACmd struct {
		CertPEM   string `json:"cert_pem"`
		KeySealed string `json:"key_sealed"`
	}
	// NodeLabelsCmd sets (or, with an empty value, removes) operator labels
	// of a node, which the node itself cannot change.
	NodeLabelsCmd struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		// MaxLabels is limits.labels of the coordinator that took the
		// request: how many operator labels the node may end up with
		// (0 in entries written before it: defaultMaxLabels). It travels
		// in the command so that every coordinator applies the same.
		MaxLabels int `json:"max_labels,omitempty"`
	}
)

func trustKey(kind, name string) string { return "trust/" + kind + "/" + name }

// prune drops expired tokens and old requests, deterministically from the
// command's time.
func (t *trustData) prune(now int64) {
	for id, tok := range t.Tokens {
		if tok.ExpiresMS != 0 && tok.ExpiresMS+pendingKeep < now {
			delete(t.Tokens, id)
		}
	}
	for name, p := range t.Pending {
		if p.Time+pendingKeep < now {
			delete(t.Pending, name)
		}
	}
	for serial, exp := range t.Revoked {
		if exp != 0 && exp < now-pendingKeep {
			delete(t.Revoked, serial)
		}
	}
}

func (s *State) createToken(idx uint64, c *CreateTokenCmd) (any, []string) {
	t := &s.data.Trust
	t.prune(c.Time)
	if len(t.Tokens) >= maxTokens {
		return fmt.Errorf("%w: %d join tokens exist; delete some (dtkctl node token delete)", ErrConflict, len(t.Tokens)), nil
	}
	if _, ok := t.Tokens[c.Token.ID]; ok {
		return fmt.Errorf("%w: token %s exists", ErrConflict, c.Token.ID), nil
	}
	tok := c.Token
	tok.CreateIndex = idx
	t.Tokens[tok.ID] = &tok
	return tok.Public(), []string{trustKey("token", tok.ID)}
}

func (s *State) deleteToken(idx uint64, c *DeleteTokenCmd) (any, []string) {
	if s.data.Trust.Tokens[c.ID] == nil {
		return fmt.Errorf("%w: join token %q", ErrNotFound, c.ID), nil
	}
	delete(s.data.Trust.Tokens, c.ID)
	return map[string]string{"deleted": c.ID}, []string{trustKey("token", c.ID)}
}

// tokenUsable says why a token cannot be used now, or nil.
func tokenUsable(tok *api.JoinToken, now int64) error {
	switch {
	case tok == nil:
		return fmt.Errorf("%w: unknown join token", ErrUnauthorized)
	case tok.ExpiresMS != 0 && now >= tok.ExpiresMS:
		return fmt.Errorf("%w: join token %s expired", ErrUnauthorized, tok.ID)
	case tok.MaxUses > 0 && tok.Uses >= tok.MaxUses:
		return fmt.Errorf("%w: join token %s is used up (%d of %d uses)", ErrUnauthorized, tok.ID, tok.Uses, tok.MaxUses)
	}
	return nil
}

// enrolledConflict refuses a second identity for a name that is enrolled
// with another key and not removed.
func (t *trustData) enrolledConflict(name, publicKey string) error {
	if e := t.Enrolled[name]; e != nil && e.PublicKey != publicKey {
		return fmt.Errorf("%w: node %q is already enrolled with another key; if that machine is gone, run `dtkctl node remove %s` first", ErrConflict, name, name)
	}
	return nil
}

func (s *State) enroll(idx uint64, c *EnrollCmd) (any, []string) {
	t := &s.data.Trust
	e := c.Enrollment
	t.prune(e.Time)
	if err := t.enrolledConflict(e.Name, e.PublicKey); err != nil {
		return err, nil
	}
	keys := []string{trustKey("enrolled", e.Name)}
	switch {
	case c.Renew:
		if old := t.Enrolled[e.Name]; old != nil {
			e.Labels = old.Labels
		}
	case c.TokenID != "":
		if err := tokenUsable(t.Tokens[c.TokenID], e.Time); err != nil {
			return err, nil
		}
		tok := s.ownJoinToken(c.TokenID)
		tok.Uses++
		e.Labels = maps.Clone(tok.Labels)
		keys = append(keys, trustKey("token", tok.ID))
	default:
		p := t.Pending[e.Name]
		if p == nil || p.PublicKey != e.PublicKey {
			return fmt.Errorf("%w: no pending enrollment request from node %q", ErrNotFound, e.Name), nil
		}
		if p.State != api.PendingWaiting {
			return fmt.Errorf("%w: the request from node %q is already %s", ErrConflict, e.Name, p.State), nil
		}
	}
	if old := t.Enrolled[e.Name]; old != nil && old.Serial != e.Serial && !c.Renew {
		// The same key asked again: the earlier certificate is replaced.
		t.Revoked[old.Serial] = old.NotAfter
	}
	e.CertPEM = c.CertPEM
	t.Enrolled[e.Name] = &e
	if p := t.Pending[e.Name]; p != nil && p.PublicKey == e.PublicKey {
		p = s.ownPending(e.Name)
		p.State, p.CertPEM, p.ModifyIndex = api.PendingApproved, c.CertPEM, idx
		keys = append(keys, trustKey("pending", e.Name))
	}
	return &e, keys
}

func (s *State) addPending(idx uint64, c *PendingCmd) (any, []string) {
	t := &s.data.Trust
	p := c.Request
	t.prune(p.Time)
	if old := t.Pending[p.Name]; old != nil {
		if old.PublicKey == p.PublicKey {
			return old, nil
		}
		if old.State == api.PendingWaiting {
			return fmt.Errorf("%w: another enrollment request for node %q is already waiting for an operator", ErrConflict, p.Name), nil
		}
	}
	if err := t.enrolledConflict(p.Name, p.PublicKey); err != nil {
		return err, nil
	}
	if len(t.Pending) >= maxPending {
		return fmt.Errorf("%w: %d enrollment requests are waiting; an operator must approve or reject some first", ErrTooMany, len(t.Pending)), nil
	}
	p.State, p.CreateIndex, p.ModifyIndex = api.PendingWaiting, idx, idx
	t.Pending[p.Name] = &p
	return &p, []string{trustKey("pending", p.Name)}
}

func (s *State) reject(idx uint64, c *RejectCmd) (any, []string) {
	p := s.data.Trust.Pending[c.Name]
	if p == nil || p.State != api.PendingWaiting {
		return fmt.Errorf("%w: no enrollment request from node %q is waiting", ErrNotFound, c.Name), nil
	}
	p = s.ownPending(c.Name)
	p.State, p.ModifyIndex, p.Time = api.PendingRejected, idx, c.Time
	p.CertPEM = ""
	return p, []string{trustKey("pending", c.Name)}
}

func (s *State) removeNode(idx uint64, c *RemoveNodeCmd) (any, []string) {
	t := &s.data.Trust
	n, known := s.data.Nodes[c.Name]
	s.setAt(c.Time, "", "")
	if c.Collect {
		if !known || n.Status != plan.NodeDown || n.LastSeen >= c.DownBefore {
			return fmt.Errorf("%w: node %q is not down since before %d", ErrConflict, c.Name, c.DownBefore), nil
		}
		s.emit(api.Event{Type: api.EventNodeRemoved, Node: c.Name, Message: "forgotten after being down for long"})
		keys := s.forgetNode(idx, c.Name)
		return map[string]string{"collected": c.Name}, keys
	}
	e := t.Enrolled[c.Name]
	if !known && e == nil {
		return fmt.Errorf("%w: node %q", ErrNotFound, c.Name), nil
	}
	if e != nil {
		t.Revoked[e.Serial] = e.NotAfter
		delete(t.Enrolled, c.Name)
	}
	t.Removed[c.Name] = c.Time
	delete(t.Pending, c.Name)
	s.emit(api.Event{Type: api.EventNodeRemoved, Node: c.Name, Message: "removed"})
	keys := s.forgetNode(idx, c.Name)
	return map[string]string{"removed": c.Name}, append(keys, trustKey("enrolled", c.Name))
}

func (s *State) putCA(idx uint64, c *PutCACmd) (any, []string) {
	s.data.Trust.CACert, s.data.Trust.CAKey = c.CertPEM, c.KeySealed
	return nil, []string{trustKey("ca", "")}
}

// defaultMaxLabels bounds a node's operator labels in NodeLabelsCmd
// entries that carry no bound. The sizes of keys and values are checked
// when a request brings them (Server.checkLabels), against the
// configuration of the coordinator that took it.
const defaultMaxLabels = 64

func (s *State) nodeLabels(idx uint64, c *NodeLabelsCmd) (any, []string) {
	old := s.data.Nodes[c.Name]
	if old == nil {
		return fmt.Errorf("%w: node %q", ErrNotFound, c.Name), nil
	}
	n := *old
	n.OperatorLabels = maps.Clone(old.OperatorLabels)
	if n.OperatorLabels == nil {
		n.OperatorLabels = map[string]string{}
	}
	for k, v := range c.Labels {
		if v == "" {
			delete(n.OperatorLabels, k)
		} else {
			n.OperatorLabels[k] = v
		}
	}
	max := c.MaxLabels
	if max <= 0 {
		max = defaultMaxLabels
	}
	if len(n.OperatorLabels) > max {
		return fmt.Errorf("%w: %s", ErrInvalid, limits.Refusal(limits.KeyLabels, "node %q would have %d operator labels, more than %d", c.Name, len(n.OperatorLabels), max)), nil
	}
	n.Labels = mergeLabels(n.AgentLabels, n.OperatorLabels)
	n.ModifyIndex = idx
	s.data.Nodes[c.Name] = &n
	return &n, []string{nodeKey(c.Name)}
}

// mergeLabels is the labels a node has: its own, with the operator's
// winning.
func mergeLabels(agent, operator map[string]string) map[string]string {
	if len(agent)+len(operator) == 0 {
		return nil
	}
	out := maps.Clone(agent)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, operator)
	return out
}

// --- reads ---

// Tokens lists join tokens (without secrets).
func (s *State) Tokens() []api.JoinToken {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.JoinToken, 0, len(s.data.Trust.Tokens))
	for _, t := range s.data.Trust.Tokens {
		out = append(out, t.Public())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// TokenByHash finds a token by the hash of its secret.
func (s *State) TokenByHash(hash string) *api.JoinToken {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The ID is the hash's first 12 digits: one map lookup.
	if len(hash) < 12 {
		return nil
	}
	t := s.data.Trust.Tokens[hash[:12]]
	if t == nil || t.SecretHash != hash {
		return nil
	}
	c := *t
	c.Labels = maps.Clone(t.Labels)
	return &c
}

// PendingNodes lists enrollment requests (waiting ones first).
func (s *State) PendingNodes() []api.PendingNode {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.PendingNode, 0, len(s.data.Trust.Pending))
	for _, p := range s.data.Trust.Pending {
		c := *p
		c.CSR, c.CertPEM = "", ""
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].State == api.PendingWaiting) != (out[j].State == api.PendingWaiting) {
			return out[i].State == api.PendingWaiting
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Pending is one enrollment request (a copy), or nil.
func (s *State) Pending(name string) *api.PendingNode {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.data.Trust.Pending[name]; p != nil {
		c := *p
		return &c
	}
	return nil
}

// Enrolled is the certificate enrollment issued to a node, or nil.
func (s *State) Enrolled(name string) *Enrollment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.data.Trust.Enrolled[name]; e != nil {
		c := *e
		c.Labels = maps.Clone(e.Labels)
		return &c
	}
	return nil
}

// Revoked says why a node certificate (serial, issued at notBefore ms) no
// longer works, or "".
func (s *State) Revoked(name, serial string, notBefore int64) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.data.Trust.Revoked[serial]; ok {
		return fmt.Sprintf("certificate %s of node %q was revoked", serial, name)
	}
	if at, ok := s.data.Trust.Removed[name]; ok && notBefore <= at {
		return fmt.Sprintf("node %q was removed; its certificates were revoked", name)
	}
	return ""
}

// RemovedAt is when a node name was last removed (ms), or 0.
func (s *State) RemovedAt(name string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Trust.Removed[name]
}

// ClusterCA is the stored CA certificate and sealed key ("" when none).
func (s *State) ClusterCA() (certPEM, keySealed string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Trust.CACert, s.data.Trust.CAKey
}

// SliceDigests lists the module blobs a node may read: those its plan
// slice and its operations need.
func (s *State) SliceDigests(node string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	add := func(steps []*plan.Step) {
		for _, st := range steps {
			if st.ModuleDigest != "" && !slices.Contains(out, st.ModuleDigest) {
				out = append(out, st.ModuleDigest)
			}
		}
	}
	add(s.sliceLocked(node).Steps)
	for _, op := range s.data.Ops {
		add(op.Steps[node])
	}
	return out
}
