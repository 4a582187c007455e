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
// addresses on every call (the agent learns them from gossip). A call that
// cannot connect, or that a coordinator does not answer in time (see
// DefaultTimeout and the other deadlines), moves the client on to the next
// address for the following call, and the address that timed out is
// skipped for a while (AvoidFor) while others are known.
type Client struct {
	Addrs func() []string
	HTTP  *http.Client
	// Secure makes addresses without a scheme use https.
	Secure bool
	// Token is the ACL token sent with every request (when set).
	Token string
	// Timeout bounds a read (GET) that is neither a long-poll nor a
	// transfer (DefaultTimeout when 0).
	Timeout time.Duration
	// WriteTimeout bounds any other request that is not a transfer
	// (DefaultWriteTimeout when 0): longer, because a coordinator holds a
	// write while the cluster elects a leader, and answers it then.
	WriteTimeout time.Duration
	// LongPollMargin is added to a long-poll's wait to bound it
	// (DefaultLongPollMargin when 0).
	LongPollMargin time.Duration

	mu    sync.Mutex
	cur   int
	avoid map[string]time.Time
}

// AvoidFor is how long an address that timed out is skipped while others
// are known.
const AvoidFor = 15 * time.Second

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
	_, b, err := c.pick()
	if err != nil {
		return ""
	}
	return b
}

// ErrNoCoordinator means no coordinator address is known.
var ErrNoCoordinator = errors.New("no coordinator known")

// pick chooses the address for a call: the current one, or the next one
// not being avoided. base is the address as a URL prefix.
func (c *Client) pick() (addr, base string, err error) {
	addrs := c.Addrs()
	if len(addrs) == 0 {
		return "", "", ErrNoCoordinator
	}
	now := time.Now()
	c.mu.Lock()
	for k := range addrs {
		if c.avoid[addrs[(c.cur+k)%len(addrs)]].After(now) {
			continue
		}
		c.cur += k
		break
	}
	a := addrs[c.cur%len(addrs)]
	c.mu.Unlock()
	base = a
	if !strings.Contains(a, "://") {
		if c.Secure {
			base = "https://" + a
		} else {
			base = "http://" + a
		}
	}
	return a, strings.TrimRight(base, "/"), nil
}

// Rotate makes the next call use the next coordinator.
func (c *Client) Rotate() {
	c.mu.Lock()
	c.cur++
	c.mu.Unlock()
}

// moveOn makes the next call go elsewhere if it would go to addr (calls
// that fail together move the client once, not once each); with avoid the
// address is also skipped for AvoidFor.
func (c *Client) moveOn(addr string, avoid bool) {
	addrs := c.Addrs()
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if avoid {
		if c.avoid == nil {
			c.avoid = map[string]time.Time{}
		}
		for a, until := range c.avoid {
			if until.Before(now) {
				delete(c.avoid, a)
			}
		}
		c.avoid[addr] = now.Add(AvoidFor)
	}
	if len(addrs) > 0 && addrs[c.cur%len(addrs)] == addr {
		c.cur++
	}
}

// effectiveWait is how long a coordinator holds a long-poll told to wait
// w: 5 minutes when told nothing, at most 10.
func effectiveWait(w time.Duration) time.Duration {
	if w <= 0 {
		return 5 * time.Minute
	}
	return min(w, 10*time.Minute)
}

// shape says which deadline a request gets.
type shape struct {
	// wait > 0 marks a long-poll: the deadline is wait + LongPollMargin.
	wait time.Duration
	// transfer marks an upload or download of any size: bounded by
	// progress (TransferIdle) rather than in total.
	transfer bool
}

func (c *Client) deadline(method string, sh shape) time.Duration {
	switch {
	case sh.wait > 0:
		m := c.LongPollMargin
		if m <= 0 {
			m = DefaultLongPollMargin
		}
		return sh.wait + m
	case sh.transfer:
		return TransferAnswer
	case method != http.MethodGet && method != http.MethodHead:
		if c.WriteTimeout > 0 {
			return c.WriteTimeout
		}
		return DefaultWriteTimeout
	case c.Timeout > 0:
		return c.Timeout
	default:
		return DefaultTimeout
	}
}

// Do sends an ordinary request (bounded by Timeout or WriteTimeout) and decodes a JSON
// answer into out (when not nil). A non-2xx answer comes back as
// *APIError; no answer in time as an error wrapping ErrTimeout.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) (http.Header, error) {
	return c.do(ctx, method, path, body, out, shape{})
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any, sh shape) (http.Header, error) {
	resp, err := c.send(ctx, method, path, body, "application/json", sh)
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

// send makes one request under the deadline its shape gives. The answer's
// body must be closed; reading it stays under the deadline (for a transfer,
// under TransferIdle per read).
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string, sh shape) (*http.Response, error) {
	addr, base, err := c.pick()
	if err != nil {
		return nil, err
	}
	limit := c.deadline(method, sh)
	rctx, wd := NewWatchdog(ctx, limit)
	size := bodySize(body)
	if body != nil && sh.transfer {
		// The upload starts at once and moves; its answer (the
		// coordinator checks and replicates it) may take TransferAnswer.
		wd.Kick(TransferIdle)
		body = &progressReader{r: body, w: wd, idle: TransferIdle, atEOF: TransferAnswer}
	}
	req, err := http.NewRequestWithContext(rctx, method, base+path, body)
	if err != nil {
		wd.Stop()
		return nil, err
	}
	if size > 0 {
		req.ContentLength = size // the progress wrapper hides it
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set(TokenHeader, c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		wd.Stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cannot reach coordinator at %s: %w", base, unwrapURL(err))
		}
		if errors.Is(context.Cause(rctx), ErrTimeout) {
			c.moveOn(addr, true)
			return nil, fmt.Errorf("%s %s at %s: no answer within %s: %w", method, path, base, limit, ErrTimeout)
		}
		c.moveOn(addr, false)
		return nil, fmt.Errorf("cannot reach coordinator at %s: %w", base, unwrapURL(err))
	}
	idle := time.Duration(0)
	if sh.transfer {
		idle = TransferIdle
		wd.Kick(idle)
	}
	resp.Body = &guardedBody{ReadCloser: resp.Body, ctx: rctx, w: wd, idle: idle, onTimer: func() { c.moveOn(addr, true) }}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae APIError
		if json.Unmarshal(b, &ae) != nil || ae.Message == "" {
			ae = APIError{Message: strings.TrimSpace(string(b))}
		}
		ae.Code = resp.StatusCode
		if resp.StatusCode == http.StatusServiceUnavailable {
			c.moveOn(addr, false)
		}
		return nil, &ae
	}
	return resp, nil
}

// bodySize is the length of a body whose length is known (-1 otherwise).
func bodySize(body io.Reader) int64 {
	switch b := body.(type) {
	case *bytes.Reader:
		return int64(b.Len())
	case *bytes.Buffer:
		return int64(b.Len())
	case *strings.Reader:
		return int64(b.Len())
	}
	return -1
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
	resp, err := c.send(ctx, "POST", "/v1/modules", bytes.NewReader(archive), "application/gzip", shape{transfer: true})
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
	resp, err := c.send(ctx, "GET", "/v1/blobs/"+url.PathEscape(digest), nil, "", shape{transfer: true})
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
	h, err := c.do(ctx, "GET", path, nil, &out, shape{wait: effectiveWait(wait)})
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
func (c *Client) Deploy(ctx context.Context, name string) (*DeployAnswer, error) {
	return c.DeployWith(ctx, name, DeployRequest{})
}

// DeployWith deploys with a rollout override, force or restore.
func (c *Client) DeployWith(ctx context.Context, name string, req DeployRequest) (*DeployAnswer, error) {
	var out DeployAnswer
	var body io.Reader
	if req != (DeployRequest{}) {
		body = jsonBody(req)
	}
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/deploy", body, &out)
	return &out, err
}

// RolloutAction pauses, resumes, promotes or aborts a service's rollout.
func (c *Client) RolloutAction(ctx context.Context, name, action string) error {
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/rollout/"+url.PathEscape(action), nil, nil)
	return err
}

// Revert deploys a kept generation's configuration again.
func (c *Client) Revert(ctx context.Context, name string, req RevertRequest) (*DeployAnswer, error) {
	var out DeployAnswer
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/revert", jsonBody(req), &out)
	return &out, err
}

// Generations lists a service's kept generations.
func (c *Client) Generations(ctx context.Context, name string) ([]Generation, error) {
	var out []Generation
	_, err := c.Do(ctx, "GET", "/v1/services/"+url.PathEscape(name)+"/generations", nil, &out)
	return out, err
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
	_, err := c.do(ctx, "GET", path, nil, &out, shape{wait: effectiveWait(wait)})
	return &out, err
}

// Reports sends step reports; a nil error means they are committed.
func (c *Client) Reports(ctx context.Context, node string, reports []plan.Report) (*ReportsResponse, error) {
	var out ReportsResponse
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/reports", jsonBody(ReportsRequest{Reports: reports}), &out)
	return &out, err
}

// DefaultHTTPClient is tuned for long-polls: no overall timeout (each call
// carries its deadline, see DefaultTimeout), a dial timeout so that a dead
// coordinator is left quickly. Plain HTTP speaks HTTP/1.1, which has no
// PING: a coordinator that hangs mid-long-poll is noticed only at the
// long-poll's deadline (TLSHTTPClient notices within seconds).
func DefaultHTTPClient() *http.Client {
	return &http.Client{Transport: NewTransport(nil)}
}

// NewTransport is the transport every dtk client uses (agents, dtkctl,
// coordinators calling each other): with a TLS configuration it speaks
// HTTP/2 and PINGs a server that has sent nothing for PingInterval, closing
// the connection (and failing its requests) when no answer comes within
// PingTimeout. That is how a coordinator that hangs in the middle of a
// long-poll is found within seconds without the server's help: the
// coordinator's HTTP/2 server answers PINGs outside the handlers, so only
// a coordinator that is frozen, or cut off, fails to. Connections that
// cannot be made, or whose TLS handshake does not finish, fail within
// DialTimeout and TLSHandshakeTimeout.
func NewTransport(cfg *tls.Config) *http.Transport {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: TLSHandshakeTimeout,
		// No WriteByteTimeout: it sets a deadline around every write,
		// which cost a quarter of the write path's throughput in make
		// bench; a PING that goes unanswered covers a server that stops
		// reading as well.
		HTTP2: &http.HTTP2Config{SendPingTimeout: PingInterval, PingTimeout: PingTimeout},
	}
	if cfg != nil {
		t.TLSClientConfig = cfg
		t.ForceAttemptHTTP2 = true
	}
	return t
}

// TLSHTTPClient is DefaultHTTPClient speaking TLS (and HTTP/2, with PINGs)
// with cfg (from tlsutil.Store.ClientConfig).
func TLSHTTPClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: NewTransport(cfg)}
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
	resp, err := c.send(ctx, "GET", "/v1/operator/snapshot", nil, "", shape{transfer: true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// SnapshotRestore replaces the cluster's state with a saved snapshot.
func (c *Client) SnapshotRestore(ctx context.Context, r io.Reader) (map[string]any, error) {
	resp, err := c.send(ctx, "PUT", "/v1/operator/snapshot", r, "application/gzip", shape{transfer: true})
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
	_, err := c.do(ctx, "GET", path, nil, &out, shape{wait: effectiveWait(wait)})
	return &out, err
}

// NodeOps is the agent's blocking query for its operations.
func (c *Client) NodeOps(ctx context.Context, node string, index uint64, wait time.Duration) (*NodeOps, error) {
	var out NodeOps
	_, err := c.do(ctx, "GET", fmt.Sprintf("/v1/nodes/%s/ops?index=%d&wait=%s", url.PathEscape(node), index, wait), nil, &out, shape{wait: effectiveWait(wait)})
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
