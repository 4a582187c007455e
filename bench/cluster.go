package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// Coord is one coordinator process.
type Coord struct {
	*Proc
	IP, HTTP, Serf, DataDir string
	c                       *Cluster
}

// Cluster is coordinators (and optionally agents) as real dtk-agent
// processes on loopback addresses PREFIX.1, PREFIX.2, ..., with the
// shipped timers.
type Cluster struct {
	Dir    string
	Bin    string
	Prefix string
	Coords []*Coord
	// Replicas are read-replica coordinators (--read-replica): non-voters
	// that serve agents' long-polls and forward writes.
	Replicas []*Coord
	Agents   []*Proc
	// PKI secures the cluster: mutual TLS on the API, forwarding and
	// Raft, encrypted gossip. Nil: --insecure.
	PKI *PKI
	// ACL says the coordinators run with --acl-enabled; Token is then the
	// management token the benchmark bootstrapped, sent with every
	// operator call (agents need none: their node certificates suffice).
	ACL   bool
	Token string

	probe *http.Client
}

// StartCluster starts n coordinators with `dtk-agent run --coordinator
// --no-agent --bootstrap-expect n` and waits for a leader. Unless
// insecure, it first makes a CA in dir and gives each coordinator a server
// certificate for its address and the cluster's gossip key, as an operator
// would (dtk-agent tls ca create, tls cert create --server, keygen), and
// turns access control on (--acl-enabled, then POST /v1/acl/bootstrap for
// the management token), as shipped for production. An insecure cluster
// runs without ACLs: without certificates, agents could not be told from
// operators.
func StartCluster(bin, dir, prefix string, n int, insecure bool) (*Cluster, error) {
	return StartClusterACL(bin, dir, prefix, n, insecure, !insecure)
}

// StartClusterACL is StartCluster with access control on or off (on needs
// a secure cluster).
func StartClusterACL(bin, dir, prefix string, n int, insecure, aclOn bool) (*Cluster, error) {
	if insecure && aclOn {
		return nil, fmt.Errorf("ACLs need a secure cluster: without certificates agents cannot be told from operators")
	}
	c := &Cluster{Dir: dir, Bin: bin, Prefix: prefix, ACL: aclOn}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if !insecure {
		p, err := NewPKI(dir)
		if err != nil {
			return nil, fmt.Errorf("cluster certificates: %w", err)
		}
		c.PKI = p
	}
	c.probe = c.PKI.HTTP(c.PKI.operatorStore())
	for i := 1; i <= n; i++ {
		var join []string
		for j := 1; j <= n; j++ {
			if j != i {
				join = append(join, hostAddr(prefix, j)+":7946")
			}
		}
		co, err := c.startCoord(fmt.Sprintf("coord-%d", i), hostAddr(prefix, i), join,
			"--bootstrap-expect", fmt.Sprint(n))
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Coords = append(c.Coords, co)
	}
	if err := c.WaitReady(60 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	// A coordinator that could not start (its address taken by another
	// cluster, say) must not go unnoticed: the others would still form.
	for _, co := range c.Coords {
		if !co.Alive() {
			c.Stop()
			return nil, fmt.Errorf("coordinator %s exited during start-up (see %s)", co.Name, co.Log)
		}
	}
	if aclOn {
		if err := c.bootstrapACL(30 * time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// startCoord starts one coordinator process named name on ip that joins
// the given gossip addresses.
func (c *Cluster) startCoord(name, ip string, join []string, extra ...string) (*Coord, error) {
	co := &Coord{IP: ip, HTTP: ip + ":7070", Serf: ip + ":7946", DataDir: filepath.Join(c.Dir, name), c: c}
	args := append([]string{"run", "--coordinator", "--no-agent",
		"--name", name, "--data-dir", co.DataDir, "--serf-addr", co.Serf, "--log-level", "info",
		// The fleet module holds one node block per agent: 1.8 MB at 10,000.
		"--limits-hcl-file-bytes", "16MiB"}, extra...)
	sec, err := c.PKI.RunArgs(tlsutil.RoleServer, name, ip)
	if err != nil {
		return nil, err
	}
	args = append(args, sec...)
	if c.ACL {
		args = append(args, "--acl-enabled")
	}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	p, err := StartProc(c.Bin, c.Dir, name, args...)
	if err != nil {
		return nil, err
	}
	co.Proc = p
	return co, nil
}

// AddReadReplicas starts n read-replica coordinators (--read-replica) on
// PREFIX.11, PREFIX.12, ..., joined to the voters, and waits until each
// serves (knows the leader and holds the state). Agents prefer them.
func (c *Cluster) AddReadReplicas(n int) error {
	for i := 1; i <= n; i++ {
		co, err := c.startCoord(fmt.Sprintf("replica-%d", i), hostAddr(c.Prefix, 10+i),
			[]string{c.Coords[0].Serf}, "--read-replica")
		if err != nil {
			return err
		}
		c.Replicas = append(c.Replicas, co)
	}
	return waitUntil(60*time.Second, 50*time.Millisecond, "read replicas serving", func() bool {
		for _, co := range c.Replicas {
			if !co.Alive() {
				return false
			}
			st, err := co.Status(time.Second)
			if err != nil || st.Leader == "" || !st.RaftConfigured {
				return false
			}
		}
		return true
	})
}

// AgentAddrs are the addresses agents poll: the read replicas when there
// are some (as real agents prefer them), else the voters.
func (c *Cluster) AgentAddrs() []string {
	if len(c.Replicas) == 0 {
		return c.Addrs()
	}
	out := make([]string, len(c.Replicas))
	for i, co := range c.Replicas {
		out[i] = co.HTTP
	}
	return out
}

// bootstrapACL makes the management token (an operator certificate, no
// token yet), retrying while the cluster settles (a new leader may not
// have committed its first entry). Bootstrapping works once: a conflict
// after an answer lost in transit is an error, not retried.
func (c *Cluster) bootstrapACL(timeout time.Duration) error {
	cl := c.PKI.Operator(c.Addrs()...)
	defer cl.HTTP.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := ctxT(10 * time.Second)
		t, err := cl.ACLBootstrap(ctx)
		cancel()
		if err == nil {
			if t.SecretID == "" {
				return fmt.Errorf("ACL bootstrap answered without a secret")
			}
			c.Token = t.SecretID
			return c.waitToken(c.Token, time.Until(deadline)+10*time.Second)
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code != http.StatusServiceUnavailable && ae.Code < 500 {
			return fmt.Errorf("ACL bootstrap: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ACL bootstrap: gave up after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitReady waits until every live coordinator answers and knows a leader.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	alive := 0
	for _, co := range c.Coords {
		if co.Alive() {
			alive++
		}
	}
	if alive == 0 {
		return fmt.Errorf("no coordinator is running (see %s/coord-*.log)", c.Dir)
	}
	return waitUntil(timeout, 50*time.Millisecond, "a formed cluster", func() bool {
		for _, co := range c.Coords {
			if !co.Alive() {
				continue
			}
			st, err := co.Status(time.Second)
			if err != nil || st.Leader == "" || !st.RaftConfigured {
				return false
			}
		}
		return true
	})
}

// AddAgent starts a real agent process on ip that joins the pool.
func (c *Cluster) AddAgent(name, ip string, labels map[string]string) (*Proc, error) {
	args := []string{"run", "--name", name, "--data-dir", filepath.Join(c.Dir, name),
		"--serf-addr", ip + ":7946", "--join", c.Coords[0].Serf, "--log-level", "info"}
	sec, err := c.PKI.RunArgs(tlsutil.RoleNode, name, ip)
	if err != nil {
		return nil, err
	}
	args = append(args, sec...)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+labels[k])
	}
	p, err := StartProc(c.Bin, c.Dir, name, args...)
	if err != nil {
		return nil, err
	}
	c.Agents = append(c.Agents, p)
	return p, nil
}

// waitToken waits until every coordinator knows token (GET
// /v1/acl/tokens/self): a follower serves requests from its own copy of
// the state, which may not yet hold a token the leader just committed.
func (c *Cluster) waitToken(token string, timeout time.Duration) error {
	for _, co := range c.Coords {
		cl := c.PKI.Operator(co.HTTP)
		cl.Token = token
		err := waitUntil(timeout, 5*time.Millisecond, "the ACL token on "+co.Name, func() bool {
			ctx, cancel := ctxT(2 * time.Second)
			defer cancel()
			_, err := cl.ACLToken(ctx, "self")
			return err == nil
		})
		cl.HTTP.CloseIdleConnections()
		if err != nil {
			return err
		}
	}
	return nil
}

// Addrs lists the coordinators' HTTP addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Coords))
	for i, co := range c.Coords {
		out[i] = co.HTTP
	}
	return out
}

// Client is an operator's API client (a client certificate, and the
// management token when ACLs are on) over every coordinator, with its own
// connection pool.
func (c *Cluster) Client() *api.Client { return c.OperatorAt(c.Addrs()...) }

// OperatorAt is Client over the given addresses only.
func (c *Cluster) OperatorAt(addrs ...string) *api.Client {
	cl := c.PKI.Operator(addrs...)
	cl.Token = c.Token
	return cl
}

// Leader returns the coordinator that says it leads.
func (c *Cluster) Leader() (*Coord, error) {
	for _, co := range c.Coords {
		if !co.Alive() {
			continue
		}
		if st, err := co.Status(time.Second); err == nil && st.IsLeader {
			return co, nil
		}
	}
	return nil, fmt.Errorf("no leader")
}

// PlanPolls sums the plan long-polls the given coordinators serve; a
// coordinator that does not answer counts as an error.
func PlanPolls(coords []*Coord) (int64, error) {
	var n int64
	for _, co := range coords {
		st, err := co.Status(500 * time.Millisecond)
		if err != nil {
			return 0, err
		}
		n += st.PlanPolls
	}
	return n, nil
}

// Stop stops agents, then coordinators.
func (c *Cluster) Stop() {
	for _, a := range c.Agents {
		a.Stop()
	}
	for _, co := range c.Replicas {
		co.Stop()
	}
	for _, co := range c.Coords {
		co.Stop()
	}
}

// ctxT is a context with a timeout, for one API call.
func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// cpuProfile takes a CPU profile of co over d (GET /debug/pprof/profile,
// an operator route: the operator's certificate and, with ACLs, its
// token) and writes it to file.
func (c *Cluster) cpuProfile(co *Coord, d time.Duration, file string) error {
	ctx, cancel := ctxT(d + 30*time.Second)
	defer cancel()
	u := fmt.Sprintf("%s://%s/debug/pprof/profile?seconds=%d", c.PKI.scheme(), co.HTTP, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set(api.TokenHeader, c.Token)
	}
	hc := c.PKI.HTTP(c.PKI.operatorStore())
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hostAddr is host n of a cluster's loopback prefix: prefix.n for a prefix
// of three octets ("127.0.201" → 127.0.201.n), or the prefix's last octet
// plus n for one of four ("127.0.208.100" → 127.0.208.(100+n)), so that
// several clusters can share one /24.
func hostAddr(prefix string, n int) string {
	if strings.Count(prefix, ".") == 3 {
		i := strings.LastIndexByte(prefix, '.')
		if base, err := strconv.Atoi(prefix[i+1:]); err == nil {
			return prefix[:i+1] + strconv.Itoa(base+n)
		}
	}
	return prefix + "." + strconv.Itoa(n)
}
