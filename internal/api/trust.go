package api

// Join tokens, enrollment and the gossip keyring: the wire types of the
// cluster's trust endpoints (docs/security.md).

// JoinToken is an operator-made credential that lets new agents enroll.
// The secret itself is shown once, at creation; the state keeps its hash.
type JoinToken struct {
	ID          string            `json:"id"`
	SecretHash  string            `json:"secret_hash,omitempty"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// MaxUses is how many enrollments the token allows (0: unlimited
	// until it expires); Uses how many it had.
	MaxUses     int    `json:"max_uses"`
	Uses        int    `json:"uses"`
	CreatedMS   int64  `json:"created_ms"`
	ExpiresMS   int64  `json:"expires_ms,omitempty"`
	CreateIndex uint64 `json:"create_index"`
}

// Public is the token without its secret's hash.
func (t JoinToken) Public() JoinToken {
	t.SecretHash = ""
	return t
}

// TokenRequest is POST /v1/tokens.
type TokenRequest struct {
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// TTL is a duration such as "24h" ("" for the default, "0" for none).
	TTL     string `json:"ttl,omitempty"`
	MaxUses int    `json:"max_uses"`
}

// TokenResponse is the answer to a token creation: the only time the
// secret is shown.
type TokenResponse struct {
	JoinToken
	Secret string `json:"secret"`
}

// Pending request states.
const (
	PendingWaiting  = "pending"
	PendingApproved = "approved"
	PendingRejected = "rejected"
)

// PendingNode is an enrollment request without a token, waiting for an
// operator (dtkctl node pending|approve|reject).
type PendingNode struct {
	Name string `json:"name"`
	// PublicKey is the sha256 fingerprint of the requested key; an
	// operator compares it with what the agent printed before approving.
	PublicKey string `json:"public_key"`
	// Addr is the address the request came from.
	Addr  string `json:"addr"`
	State string `json:"state"`
	Time  int64  `json:"time_ms"`
	// CSR and CertPEM travel only inside the coordinators.
	CSR         string `json:"csr,omitempty"`
	CertPEM     string `json:"cert_pem,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// EnrollRequest is POST /v1/enroll: a new agent asks for a certificate
// for its node name, with a join token or (without one) to wait for an
// operator's approval.
type EnrollRequest struct {
	Name  string `json:"name"`
	CSR   string `json:"csr"`
	Token string `json:"token,omitempty"`
}

// EnrollResponse is the answer: the certificate and the CA once issued;
// State "pending" (HTTP 202) while an operator has not decided.
type EnrollResponse struct {
	State     string `json:"state"`
	CertPEM   string `json:"cert_pem,omitempty"`
	CAPEM     string `json:"ca_pem,omitempty"`
	PublicKey string `json:"public_key"`
	Message   string `json:"message,omitempty"`
}

// NodeTrust is GET /v1/nodes/NAME/trust: what an enrolled agent refreshes
// from the coordinators — the CA bundle (a CA rotation) and the gossip keys
// (a key rotation it missed while away).
type NodeTrust struct {
	CAPEM         string   `json:"ca_pem"`
	GossipPrimary string   `json:"gossip_primary,omitempty"`
	GossipKeys    []string `json:"gossip_keys,omitempty"`
}

// RenewRequest is POST /v1/nodes/NAME/renew: a node asks for a fresh
// certificate for the key it already holds.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// KeyringRequest is POST /v1/operator/keyring/{install,use,remove}.
type KeyringRequest struct {
	Key string `json:"key"`
}

// KeyringStatus is what the pool says about its keys: how many members
// hold each key, and use each as primary.
type KeyringStatus struct {
	Keys        map[string]int    `json:"keys"`
	PrimaryKeys map[string]int    `json:"primary_keys"`
	NumNodes    int               `json:"num_nodes"`
	Messages    map[string]string `json:"messages,omitempty"`
}

// NodeLabelsRequest is POST /v1/nodes/NAME/labels: operator labels to set
// (an empty value removes one).
type NodeLabelsRequest struct {
	Labels map[string]string `json:"labels"`
}
