package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Enroll asks for a node certificate. A pending request (no token) comes
// back with State "pending" and a nil error.
func (c *Client) Enroll(ctx context.Context, req EnrollRequest) (*EnrollResponse, error) {
	var out EnrollResponse
	_, err := c.Do(ctx, "POST", "/v1/enroll", jsonBody(req), &out)
	return &out, err
}

// NodeTrust fetches the CA bundle and gossip keys for an enrolled node.
func (c *Client) NodeTrust(ctx context.Context, node string) (*NodeTrust, error) {
	var out NodeTrust
	_, err := c.Do(ctx, "GET", "/v1/nodes/"+url.PathEscape(node)+"/trust", nil, &out)
	return &out, err
}

// Renew asks for a fresh certificate for the node's key.
func (c *Client) Renew(ctx context.Context, node string, csrPEM []byte) (*EnrollResponse, error) {
	var out EnrollResponse
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/renew", jsonBody(RenewRequest{CSR: string(csrPEM)}), &out)
	return &out, err
}

// CreateToken makes a join token; the answer carries its secret.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	var out TokenResponse
	_, err := c.Do(ctx, "POST", "/v1/tokens", jsonBody(req), &out)
	return &out, err
}

// Tokens lists join tokens (without secrets).
func (c *Client) Tokens(ctx context.Context) ([]JoinToken, error) {
	var out []JoinToken
	_, err := c.Do(ctx, "GET", "/v1/tokens", nil, &out)
	return out, err
}

// DeleteToken revokes a join token.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
	return err
}

// PendingNodes lists enrollment requests waiting for an operator.
func (c *Client) PendingNodes(ctx context.Context) ([]PendingNode, error) {
	var out []PendingNode
	_, err := c.Do(ctx, "GET", "/v1/enroll/pending", nil, &out)
	return out, err
}

// ApproveNode signs a pending node's certificate; RejectNode refuses it.
func (c *Client) ApproveNode(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "POST", "/v1/enroll/pending/"+url.PathEscape(name)+"/approve", nil, nil)
	return err
}

// RejectNode refuses a pending node's request.
func (c *Client) RejectNode(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "POST", "/v1/enroll/pending/"+url.PathEscape(name)+"/reject", nil, nil)
	return err
}

// RemoveNode revokes a node's certificates and forgets it.
func (c *Client) RemoveNode(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(name), nil, nil)
	return err
}

// SetNodeLabels sets operator labels on a node ("" removes one).
func (c *Client) SetNodeLabels(ctx context.Context, name string, labels map[string]string) error {
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(name)+"/labels", jsonBody(NodeLabelsRequest{Labels: labels}), nil)
	return err
}

// Keyring lists the gossip pool's keys.
func (c *Client) Keyring(ctx context.Context) (*KeyringStatus, error) {
	var out KeyringStatus
	_, err := c.Do(ctx, http.MethodGet, "/v1/operator/keyring", nil, &out)
	return &out, err
}

// KeyringOp installs, uses or removes a gossip key across the pool.
func (c *Client) KeyringOp(ctx context.Context, op, key string) (*KeyringStatus, error) {
	var out KeyringStatus
	_, err := c.Do(ctx, http.MethodPost, "/v1/operator/keyring/"+url.PathEscape(op), jsonBody(KeyringRequest{Key: key}), &out)
	return &out, err
}

// ACLBootstrap makes the first management token (once per cluster).
func (c *Client) ACLBootstrap(ctx context.Context) (*ACLToken, error) {
	var out ACLToken
	_, err := c.Do(ctx, "POST", "/v1/acl/bootstrap", nil, &out)
	return &out, err
}

// ACLPolicies lists policies.
func (c *Client) ACLPolicies(ctx context.Context) ([]ACLPolicy, error) {
	var out []ACLPolicy
	_, err := c.Do(ctx, "GET", "/v1/acl/policies", nil, &out)
	return out, err
}

// ACLPolicy reads one policy.
func (c *Client) ACLPolicy(ctx context.Context, name string) (*ACLPolicy, error) {
	var out ACLPolicy
	_, err := c.Do(ctx, "GET", "/v1/acl/policies/"+url.PathEscape(name), nil, &out)
	return &out, err
}

// PutACLPolicy creates or replaces a policy.
func (c *Client) PutACLPolicy(ctx context.Context, p ACLPolicy) (*ACLPolicy, error) {
	var out ACLPolicy
	_, err := c.Do(ctx, "PUT", "/v1/acl/policies/"+url.PathEscape(p.Name), jsonBody(p), &out)
	return &out, err
}

// DeleteACLPolicy deletes a policy.
func (c *Client) DeleteACLPolicy(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/acl/policies/"+url.PathEscape(name), nil, nil)
	return err
}

// ACLTokens lists tokens (without secrets).
func (c *Client) ACLTokens(ctx context.Context) ([]ACLToken, error) {
	var out []ACLToken
	_, err := c.Do(ctx, "GET", "/v1/acl/tokens", nil, &out)
	return out, err
}

// ACLToken reads one token by accessor ("self": the caller's).
func (c *Client) ACLToken(ctx context.Context, accessor string) (*ACLToken, error) {
	var out ACLToken
	_, err := c.Do(ctx, "GET", "/v1/acl/tokens/"+url.PathEscape(accessor), nil, &out)
	return &out, err
}

// CreateACLToken makes a token; the answer carries its secret.
func (c *Client) CreateACLToken(ctx context.Context, req ACLTokenRequest) (*ACLToken, error) {
	var out ACLToken
	_, err := c.Do(ctx, "POST", "/v1/acl/tokens", jsonBody(req), &out)
	return &out, err
}

// DeleteACLToken revokes a token at once.
func (c *Client) DeleteACLToken(ctx context.Context, accessor string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/acl/tokens/"+url.PathEscape(accessor), nil, nil)
	return err
}

// Audit lists the audit trail (service "" for all; since 0 for all).
func (c *Client) Audit(ctx context.Context, service string, since string, limit int) (*AuditList, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if since != "" {
		q.Set("since", since)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out AuditList
	_, err := c.Do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &out)
	return &out, err
}
