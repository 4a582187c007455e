package api

// ACLPolicy is a named set of rules (internal/acl, HCL).
type ACLPolicy struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Rules       string `json:"rules"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// ACLToken is a caller's credential: its policies (or management, which
// may do everything). The secret is shown once, when the token is made;
// the state keeps its hash.
type ACLToken struct {
	AccessorID  string   `json:"accessor_id"`
	SecretID    string   `json:"secret_id,omitempty"`
	SecretHash  string   `json:"secret_hash,omitempty"`
	Description string   `json:"description,omitempty"`
	Policies    []string `json:"policies,omitempty"`
	Management  bool     `json:"management,omitempty"`
	CreatedMS   int64    `json:"created_ms"`
	ExpiresMS   int64    `json:"expires_ms,omitempty"`
	CreateIndex uint64   `json:"create_index"`
}

// Public is the token without its secret or the secret's hash.
func (t ACLToken) Public() ACLToken {
	t.SecretID, t.SecretHash = "", ""
	return t
}

// ACLTokenRequest is POST /v1/acl/tokens.
type ACLTokenRequest struct {
	Description string   `json:"description,omitempty"`
	Policies    []string `json:"policies,omitempty"`
	Management  bool     `json:"management,omitempty"`
	// TTL is a duration such as "720h" ("" or "0": no expiry).
	TTL string `json:"ttl,omitempty"`
}

// TokenHeader carries the caller's ACL token (Authorization: Bearer works
// too).
const TokenHeader = "X-Dtk-Token"

// AuditEntry is one accepted write: who (certificate identity, ACL
// token), when, from where, what, and the answer's status.
type AuditEntry struct {
	Index   uint64 `json:"index"`
	TimeMS  int64  `json:"time_ms"`
	Caller  string `json:"caller"`
	Token   string `json:"token,omitempty"`
	Remote  string `json:"remote,omitempty"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Query   string `json:"query,omitempty"`
	Service string `json:"service,omitempty"`
	Code    int    `json:"code"`
}

// AuditList is GET /v1/audit: the entries asked for, oldest first, and how
// many the bounded trail has dropped since the cluster began.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
	Dropped uint64       `json:"dropped"`
}
