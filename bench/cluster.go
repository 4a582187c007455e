package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// Coord is one coordinator process.
type Coord struct {
	*Proc
	IP, HTTP, Serf, DataDir string
}

// Cluster is coordinators (and optionally agents) as real dtk-agent
// processes on loopback addresses PREFIX.1, PREFIX.2, ..., with the
// shipped timers.
type Cluster struct {
	Dir    string
	Bin    string
	Prefix string
	Coords []*Coord
	Agents []*Proc
}

// StartCluster starts n coordinators with `dtk-agent run --coordinator
// --no-agent --bootstrap-expect n` and waits for a leader.
func StartCluster(bin, dir, prefix string, n int) (*Cluster, error) {
	c := &Cluster{Dir: dir, Bin: bin, Prefix: prefix}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("%s.%d", prefix, i)
		name := fmt.Sprintf("coord-%d", i)
		co := &Coord{IP: ip, HTTP: ip + ":7070", Serf: ip + ":7946", DataDir: filepath.Join(dir, name)}
		args := []string{"run", "--coordinator", "--no-agent", "--bootstrap-expect", fmt.Sprint(n),
			"--name", name, "--data-dir", co.DataDir, "--serf-addr", co.Serf, "--log-level", "info"}
		for j := 1; j <= n; j++ {
			if j != i {
				args = append(args, "--join", fmt.Sprintf("%s.%d:7946", prefix, j))
			}
		}
		p, err := StartProc(bin, dir, name, args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		co.Proc = p
		c.Coords = append(c.Coords, co)
	}
	if err := c.WaitReady(60 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitReady waits until every live coordinator answers and knows a leader.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	return waitUntil(timeout, 50*time.Millisecond, "a formed cluster", func() bool {
		for _, co := range c.Coords {
			if !co.Alive() {
				continue
			}
			st, err := Status(co.HTTP, time.Second)
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

// Addrs lists the coordinators' HTTP addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Coords))
	for i, co := range c.Coords {
		out[i] = co.HTTP
	}
	return out
}

// Client is an API client over every coordinator.
func (c *Cluster) Client() *api.Client {
	cl := api.NewClient(c.Addrs()...)
	cl.HTTP = api.DefaultHTTPClient()
	return cl
}

// Leader returns the coordinator that says it leads.
func (c *Cluster) Leader() (*Coord, error) {
	for _, co := range c.Coords {
		if !co.Alive() {
			continue
		}
		if st, err := Status(co.HTTP, time.Second); err == nil && st.IsLeader {
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
		st, err := Status(co.HTTP, 500*time.Millisecond)
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
	for _, co := range c.Coords {
		co.Stop()
	}
}

// ctxT is a context with a timeout, for one API call.
func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
