package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// IndexHeader carries the state index a blocking query answered at.
const IndexHeader = "X-Dtk-Index"

// Client talks to coordinators. Addrs is asked for the current coordinator
// addresses on every call (the agent learns them from gossip); a call that
// cannot connect moves on to the next address for the following call.
type Client struct {
	Addrs func() []string
	HTTP  *http.Client
	// Secure makes addresses without a scheme use https.
	Secure bool
	// Token is the ACL token sent with every request (when set).
	Token string

	mu  sync.Mutex
	cur int
}

// NewClient returns a client for fixed addresses (host:port or URLs).
func NewClient(addrs ...string) *Client {
	return &Client{Addrs: func() []string { return addrs }, HTTP: &http.Client{}, cur: rand.N(len(addrs) + 1)}
}

// NewDynamicClient returns a client whose addresses come from addrs (the
// gossip pool), starting at a random one so that agents spread over the
// coordinators.
func NewDynamicClient(addrs func() []string) *Client {
	return &Client{Addrs: addrs, HTTP: DefaultHTTPClient(), cur: rand.N(1 << 16)}
}

// Current is the address the next call goes to ("" when none is known).
func (c *Client) Current() string {
	b, err := c.base()
	if err != nil {
		return ""
	}
	return b
}

// ErrNoCoordinator means no coordinator address is known.
var ErrNoCoordinator = errors.New("no coordinator known")

func (c *Client) base() (string, error) {
	addrs := c.Addrs()
	if len(addrs) == 0 {
		return "", ErrNoCoordinator
	}
	c.mu.Lock()
	a := addrs[c.cur%len(addrs)]
	c.mu.Unlock()
	if !strings.Contains(a, "://") {
		if c.Secure {
			a = "https://" + a
		} else {
			a = "http://" + a
		}
	}
	return strings.TrimRight(a, "/"), nil
}

// Rotate makes the next call use the next coordinator.
func (c *Client) Rotate() {
	c.mu.Lock()
	c.cur++
	c.mu.Unlock()
}

// Do sends a request and decodes a JSON answer into out (when not nil). A
// non-2xx answer comes back as *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) (http.Header, error) {
	resp, err := c.send(ctx, method, path, body, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	base, err := c.base()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set(TokenHeader, c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.Rotate()
		return nil, fmt.Errorf("cannot reach coordinator at %s: %w", base, unwrapURL(err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae APIError
		if json.Unmarshal(b, &ae) != nil || ae.Message == "" {
			ae = APIError{Message: strings.TrimSpace(string(b))}
		}
		ae.Code = resp.StatusCode
		if resp.StatusCode == http.StatusServiceUnavailable {
			c.Rotate()
		}
		return nil, &ae
	}
	return resp, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	_, err := c.Do(ctx, "GET", "/v1/status", nil, &out)
	return &out, err
}

// PushModule uploads a module archive.
func (c *Client) PushModule(ctx context.Context, archive []byte, digest string) (*plan.Module, error) {
	resp, err := c.send(ctx, "POST", "/v1/modules", bytes.NewReader(archive), "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m plan.Module
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("push module: decode answer: %w", err)
	}
	return &m, nil
}

// Modules lists pushed modules.
func (c *Client) Modules(ctx context.Context) ([]*plan.Module, error) {
	var out []*plan.Module
	_, err := c.Do(ctx, "GET", "/v1/modules", nil, &out)
	return out, err
}

// Blob downloads a blob.
func (c *Client) Blob(ctx context.Context, digest string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, "GET", "/v1/blobs/"+url.PathEscape(digest), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Stage stages a service.
func (c *Client) Stage(ctx context.Context, req StageRequest) (*plan.Service, error) {
	var out plan.Service
	_, err := c.Do(ctx, "POST", "/v1/services", jsonBody(req), &out)
	return &out, err
}

// Services lists services.
func (c *Client) Services(ctx context.Context) ([]ServiceSummary, error) {
	var out []ServiceSummary
	_, err := c.Do(ctx, "GET", "/v1/services", nil, &out)
	return out, err
}

// ServiceStatus reads a service's status; with wait > 0 it blocks until the
// service changes past index.
func (c *Client) ServiceStatus(ctx context.Context, name string, index uint64, wait time.Duration) (*ServiceStatus, uint64, error) {
	path := "/v1/services/" + url.PathEscape(name)
	if wait > 0 {
		path += "?index=" + strconv.FormatUint(index, 10) + "&wait=" + wait.String()
	}
	var out ServiceStatus
	h, err := c.Do(ctx, "GET", path, nil, &out)
	if err != nil {
		return nil, 0, err
	}
	idx, _ := strconv.ParseUint(h.Get(IndexHeader), 10, 64)
	return &out, idx, nil
}

// Plan previews a service's next plan.
func (c *Client) Plan(ctx context.Context, name string) (*PlanPreview, error) {
	var out PlanPreview
	_, err := c.Do(ctx, "GET", "/v1/services/"+url.PathEscape(name)+"/plan", nil, &out)
	return &out, err
}

// SetInputs changes a service's inputs.
func (c *Client) SetInputs(ctx context.Context, name string, inputs map[string]string) (*plan.Service, error) {
	var out plan.Service
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/inputs", jsonBody(InputsRequest{Inputs: inputs}), &out)
	return &out, err
}

// Deploy compiles and publishes a service's plan.
func (c *Client) Deploy(ctx context.Context, name string) (*plan.Service, error) {
	var out plan.Service
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/deploy", nil, &out)
	return &out, err
}

// DeleteOptions limit a delete to part of a service, or extend it to the
// service's children.
type DeleteOptions struct {
	Node, Component string
	Recursive       bool
}

// Delete starts deleting a service (or part of it).
func (c *Client) Delete(ctx context.Context, name string, opts DeleteOptions) (*plan.Service, error) {
	q := url.Values{}
	if opts.Node != "" {
		q.Set("node", opts.Node)
	}
	if opts.Component != "" {
		q.Set("component", opts.Component)
	}
	if opts.Recursive {
		q.Set("recursive", "true")
	}
	path := "/v1/services/" + url.PathEscape(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out plan.Service
	_, err := c.Do(ctx, "DELETE", path, nil, &out)
	return &out, err
}

// Upgrade moves a service to another module version ("" for the latest).
func (c *Client) Upgrade(ctx context.Context, name, version string) (*plan.Service, error) {
	var out plan.Service
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/upgrade", jsonBody(UpgradeRequest{Version: version}), &out)
	return &out, err
}

// Nodes lists registered nodes.
func (c *Client) Nodes(ctx context.Context) ([]*plan.Node, error) {
	var out []*plan.Node
	_, err := c.Do(ctx, "GET", "/v1/nodes", nil, &out)
	return out, err
}

// RegisterNode registers (or updates) a node.
func (c *Client) RegisterNode(ctx context.Context, n *plan.Node) error {
	_, err := c.Do(ctx, "PUT", "/v1/nodes/"+url.PathEscape(n.Name), jsonBody(n), nil)
	return err
}

// NodePlan is the agent's blocking query for its slice.
func (c *Client) NodePlan(ctx context.Context, node string, index uint64, wait time.Duration) (*plan.Slice, error) {
	var out plan.Slice
	path := fmt.Sprintf("/v1/nodes/%s/plan?index=%d&wait=%s", url.PathEscape(node), index, wait)
	_, err := c.Do(ctx, "GET", path, nil, &out)
	return &out, err
}

// Reports sends step reports; a nil error means they are committed.
func (c *Client) Reports(ctx context.Context, node string, reports []plan.Report) (*ReportsResponse, error) {
	var out ReportsResponse
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/reports", jsonBody(ReportsRequest{Reports: reports}), &out)
	return &out, err
}

// DefaultHTTPClient is tuned for long-polls: no overall timeout (the wait
// parameter bounds a call), a dial timeout so a dead coordinator is left
// quickly.
func DefaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// TLSHTTPClient is DefaultHTTPClient speaking TLS with cfg (from
// tlsutil.Store.ClientConfig).
func TLSHTTPClient(cfg *tls.Config) *http.Client {
	c := DefaultHTTPClient()
	t := c.Transport.(*http.Transport)
	t.TLSClientConfig = cfg
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ForceAttemptHTTP2 = true
	return c
}

// Members lists the gossip pool.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out []Member
	_, err := c.Do(ctx, "GET", "/v1/operator/members", nil, &out)
	return out, err
}

// RaftPeers describes the Raft configuration.
func (c *Client) RaftPeers(ctx context.Context) (*RaftPeers, error) {
	var out RaftPeers
	_, err := c.Do(ctx, "GET", "/v1/operator/raft", nil, &out)
	return &out, err
}

// RemovePeer removes a coordinator from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/operator/raft/peers/"+url.PathEscape(id), nil, nil)
	return err
}

// SnapshotSave streams a snapshot of the cluster (state and blobs) to w.
func (c *Client) SnapshotSave(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, "GET", "/v1/operator/snapshot", nil, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// SnapshotRestore replaces the cluster's state with a saved snapshot.
func (c *Client) SnapshotRestore(ctx context.Context, r io.Reader) (map[string]any, error) {
	resp, err := c.send(ctx, "PUT", "/v1/operator/snapshot", r, "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}

// Leave asks the coordinator at this client's address to leave the cluster
// gracefully and stop.
func (c *Client) Leave(ctx context.Context) error {
	_, err := c.Do(ctx, "POST", "/v1/agent/leave", nil, nil)
	return err
}

// StartOp starts a dry run, an exec (req names the action) or a cancel.
func (c *Client) StartOp(ctx context.Context, service, kind string, req *OpRequest) (*plan.Op, error) {
	var body io.Reader
	if req != nil {
		body = jsonBody(req)
	}
	var out plan.Op
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(service)+"/"+kind, body, &out)
	return &out, err
}

// Op reads an operation; with wait > 0 it blocks until it changes past
// index.
func (c *Client) Op(ctx context.Context, id string, index uint64, wait time.Duration) (*plan.Op, error) {
	path := "/v1/ops/" + url.PathEscape(id)
	if wait > 0 {
		path += fmt.Sprintf("?index=%d&wait=%s", index, wait)
	}
	var out plan.Op
	_, err := c.Do(ctx, "GET", path, nil, &out)
	return &out, err
}

// NodeOps is the agent's blocking query for its operations.
func (c *Client) NodeOps(ctx context.Context, node string, index uint64, wait time.Duration) (*NodeOps, error) {
	var out NodeOps
	_, err := c.Do(ctx, "GET", fmt.Sprintf("/v1/nodes/%s/ops?index=%d&wait=%s", url.PathEscape(node), index, wait), nil, &out)
	return &out, err
}

// OpResults sends an agent's results for an operation.
func (c *Client) OpResults(ctx context.Context, node, id string, reports []plan.Report, final bool) error {
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/ops/"+url.PathEscape(id)+"/results",
		jsonBody(OpResultsRequest{Reports: reports, Final: final}), nil)
	return err
}

// TLSHTTPClientFor is TLSHTTPClient for a store whose material can change
// (SIGHUP, renewal): a client certificate is presented once per
// connection, so when the store's generation moves the client starts new
// connections (requests in flight finish on the old ones).
func TLSHTTPClientFor(store *tlsutil.Store) *http.Client {
	rt := &reloadingTransport{store: store}
	rt.next()
	return &http.Client{Transport: rt}
}

type reloadingTransport struct {
	store *tlsutil.Store
	mu    sync.Mutex
	gen   uint64
	cur   *http.Transport
}

// next replaces the transport (the caller holds mu, or is the constructor).
func (t *reloadingTransport) next() *http.Transport {
	old := t.cur
	t.gen = t.store.Generation()
	t.cur = TLSHTTPClient(t.store.ClientConfig()).Transport.(*http.Transport)
	if old != nil {
		old.CloseIdleConnections()
	}
	return t.cur
}

func (t *reloadingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	cur := t.cur
	if t.store.Generation() != t.gen {
		cur = t.next()
	}
	t.mu.Unlock()
	return cur.RoundTrip(r)
}

// CloseIdleConnections closes the current transport's idle connections.
func (t *reloadingTransport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur.CloseIdleConnections()
}
