package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests use only 127.0.0.190–127.0.0.198: coordinators on .190–.192,
// agents on .193–.198. They run one after another and reuse the addresses.
var hungIPs = struct{ coords, agents []string }{
	coords: []string{"127.0.0.190", "127.0.0.191", "127.0.0.192"},
	agents: []string{"127.0.0.193", "127.0.0.194", "127.0.0.195", "127.0.0.196", "127.0.0.197", "127.0.0.198"},
}

// agentMoveLimit is how soon every agent must be long-polling a healthy
// coordinator again after one stops answering (issue 12).
const agentMoveLimit = 5 * time.Second

// hungCluster is three coordinators and six agents with a service deployed.
type hungCluster struct {
	*cluster
	names  []string // coordinators
	agents map[string]*proc
	args   map[string][]string
	module string // module folder; each push bumps its version
	pushes int
}

func newHungCluster(t *testing.T) *hungCluster {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	c := &hungCluster{
		cluster: &cluster{t: t, root: t.TempDir(), coords: map[string]*proc{}, ips: map[string]string{}},
		agents:  map[string]*proc{}, args: map[string][]string{},
	}
	for i, ip := range hungIPs.coords {
		n := fmt.Sprintf("hc%d", i+1)
		c.names = append(c.names, n)
		c.ips[n] = ip
	}
	c.startCoord("hc1", c.ips["hc2"], c.ips["hc3"])
	c.startCoord("hc2", c.ips["hc1"])
	c.startCoord("hc3", c.ips["hc1"])
	c.waitFormed(c.names...)
	for i, ip := range hungIPs.agents {
		n := fmt.Sprintf("hw%d", i+1)
		c.args[n] = []string{"--data-dir", filepath.Join(c.root, n), "--serf-addr", ip + ":7946",
			"--join", c.ips["hc1"] + ":7946", "--label", "role=hc"}
		c.agents[n] = startAgent(t, n, c.args[n]...)
	}
	waitFor(t, 90*time.Second, "six agents up", func() bool {
		out, _, code := ctl(t, c.addr("hc1"), "node", "list", "--json")
		return code == 0 && strings.Count(out, `"status": "up"`) == len(hungIPs.agents)
	})
	c.module = filepath.Join(c.root, "module")
	mustCtl(t, c.addr("hc1"), "module", "push", c.nextModule())
	mustCtl(t, c.addr("hc1"), "service", "stage", "s0", "--template", "hc@1.0.1/t")
	mustCtl(t, c.addr("hc1"), "service", "deploy", "s0")
	c.waitConverged("hc1", "s0", 90*time.Second)
	return c
}

// nextModule writes the next version of a module that runs one step on
// every agent.
func (c *hungCluster) nextModule() string {
	c.pushes++
	var b strings.Builder
	fmt.Fprintf(&b, "module {\n  name    = \"hc\"\n  version = \"1.0.%d\"\n}\n", c.pushes)
	b.WriteString(`component "mark" {
  attribute "tag" {
    type     = string
    required = true
  }
  create {
    inline = "echo \"$DTK_STEP $tag\" >> \"$DTK_DATA_DIR/runs\""
  }
}
template "t" {
  input "tag" {
    type    = string
    default = "v1"
  }
`)
	for i := range hungIPs.agents {
		fmt.Fprintf(&b, "  node \"hw%d\" {\n    labels = { role = \"hc\" }\n    component \"mark\" \"m\" { tag = input.tag }\n  }\n", i+1)
	}
	b.WriteString("}\n")
	if err := os.MkdirAll(c.module, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.module, "main.hcl"), []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return c.module
}

func (c *hungCluster) waitConverged(coord, svc string, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, svc+" converged", func() bool {
		st, ok := statusOn(c.t, c.addr(coord), svc)
		return ok && st.State == "converged" && len(st.Nodes) == len(hungIPs.agents)
	})
}

// coordStatus is the part of GET /v1/status these tests read.
type coordStatus struct {
	Name      string `json:"name"`
	Leader    string `json:"leader"`
	IsLeader  bool   `json:"is_leader"`
	PlanPolls int64  `json:"plan_polls"`
}

func (c *hungCluster) status(name string) (coordStatus, error) {
	var st coordStatus
	resp, err := opClient.Get("https://" + c.addr(name) + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// polls adds up the plan long-polls the named coordinators serve (-1 when
// one does not answer).
func (c *hungCluster) polls(names ...string) int64 {
	var n int64
	for _, name := range names {
		st, err := c.status(name)
		if err != nil {
			return -1
		}
		n += st.PlanPolls
	}
	return n
}

func (c *hungCluster) leader() string {
	var l string
	waitFor(c.t, 30*time.Second, "a leader", func() bool {
		for _, n := range c.names {
			if st, err := c.status(n); err == nil && st.IsLeader {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// target picks the coordinator to lose: the leader, or the follower with
// the most agents polling it. Agents start at a random coordinator; they
// are restarted until at least one polls the target, so that the test
// proves agents move.
func (c *hungCluster) target(wantLeader bool) string {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		waitFor(c.t, 60*time.Second, "every agent polling", func() bool {
			return c.polls(c.names...) == int64(len(c.agents))
		})
		leader := c.leader()
		best, most := "", int64(-1)
		for _, n := range c.names {
			if (n == leader) != wantLeader {
				continue
			}
			if st, err := c.status(n); err == nil && st.PlanPolls > most {
				best, most = n, st.PlanPolls
			}
		}
		if most > 0 {
			c.t.Logf("target %s (leader %s): %d agents poll it", best, leader, most)
			return best
		}
		if attempt == 5 {
			c.t.Fatalf("no agent polls the %s after %d restarts", map[bool]string{true: "leader", false: "followers"}[wantLeader], attempt)
		}
		for n, p := range c.agents {
			p.stop(syscall.SIGTERM)
			c.agents[n] = startAgent(c.t, n, c.args[n]...)
		}
	}
}

func (c *hungCluster) others(lost string) []string {
	var out []string
	for _, n := range c.names {
		if n != lost {
			out = append(out, n)
		}
	}
	return out
}

// freeze SIGSTOPs a coordinator (SIGCONT at cleanup, before it is stopped).
func (c *hungCluster) freeze(name string) {
	p := c.coords[name]
	c.t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT) })
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
}

// partition drops every packet to or from a coordinator's address.
func (c *hungCluster) partition(name string) {
	ip := c.ips[name]
	for _, dir := range []string{"-s", "-d"} {
		rule := []string{"INPUT", dir, ip, "-j", "DROP"}
		if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
			c.t.Fatalf("iptables -I %v: %v\n%s", rule, err, out)
		}
		c.t.Cleanup(func() {
			if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
				c.t.Errorf("iptables -D %v: %v\n%s", rule, err, out)
			}
		})
	}
}

// watchMove measures, from t0, how long until every agent long-polls a
// survivor; check reads the result and fails the test past agentMoveLimit.
func (c *hungCluster) watchMove(t0 time.Time, survivors []string) (check func()) {
	n := int64(len(c.agents))
	res := make(chan time.Duration, 1)
	go func() {
		for time.Since(t0) < 3*agentMoveLimit {
			if c.polls(survivors...) == n {
				res <- time.Since(t0)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		res <- -1
	}()
	return func() {
		c.t.Helper()
		d := <-res
		if d < 0 || d > agentMoveLimit {
			c.t.Fatalf("not every agent polled the survivors %v within %s (took %s; -1: not within %s)", survivors, agentMoveLimit, d, 3*agentMoveLimit)
		}
		c.t.Logf("every agent polls a survivor %s after the loss", d.Round(time.Millisecond))
	}
}

// pushAndDeploy pushes a new module version and deploys a new service of
// it through coord, within limit, and waits for the service to converge
// (every agent fetched the module and reported).
func (c *hungCluster) pushAndDeploy(coord string, limit time.Duration) {
	c.t.Helper()
	start := time.Now()
	mustCtl(c.t, c.addr(coord), "module", "push", c.nextModule())
	pushed := time.Since(start)
	svc := fmt.Sprintf("s%d", c.pushes)
	mustCtl(c.t, c.addr(coord), "service", "stage", svc, "--template", fmt.Sprintf("hc@1.0.%d/t", c.pushes))
	mustCtl(c.t, c.addr(coord), "service", "deploy", svc)
	took := time.Since(start)
	c.t.Logf("push %s, push+stage+deploy %s through %s", pushed.Round(time.Millisecond), took.Round(time.Millisecond), coord)
	if took > limit {
		c.t.Fatalf("push+stage+deploy through %s took %s, want at most %s", coord, took, limit)
	}
	c.waitConverged(coord, svc, 30*time.Second)
	c.t.Logf("%s converged %s after the push started", svc, time.Since(start).Round(time.Millisecond))
}

// A frozen follower (SIGSTOP) leaves the cluster working: every agent that
// polled it moves within 5 s, and a push and deploy through the leader are
// not held up by it and converge.
func TestE2E_Hung_FrozenFollower(t *testing.T) {
	c := newHungCluster(t)
	lost := c.target(false)
	leader := c.leader()
	t0 := time.Now()
	c.freeze(lost)
	moved := c.watchMove(t0, c.others(lost))
	c.pushAndDeploy(leader, 10*time.Second)
	moved()
	// The other follower too.
	for _, n := range c.others(lost) {
		if n != leader {
			c.pushAndDeploy(n, 10*time.Second)
		}
	}
}

// A frozen leader: the survivors elect a new one, every agent moves within
// 5 s, and a push and deploy through a survivor work once it is elected.
func TestE2E_Hung_FrozenLeader(t *testing.T) {
	c := newHungCluster(t)
	lost := c.target(true)
	survivors := c.others(lost)
	t0 := time.Now()
	c.freeze(lost)
	moved := c.watchMove(t0, survivors)
	// A write sent at the moment the leader freezes waits only for the
	// election, not for the frozen leader.
	out, errOut, code := ctl(t, c.addr(survivors[0]), "service", "set", "s0", "tag=during-election")
	if code != 0 {
		t.Fatalf("write through %s while the leader froze: exit %d\n%s%s", survivors[0], code, out, errOut)
	}
	t.Logf("a write sent as the leader froze took %s", time.Since(t0).Round(time.Millisecond))
	if took := time.Since(t0); took > 8*time.Second {
		t.Fatalf("a write sent as the leader froze took %s, want at most 8 s", took)
	}
	var leader string
	waitFor(t, 30*time.Second, "a new leader among the survivors", func() bool {
		for _, n := range survivors {
			if st, err := c.status(n); err == nil && st.IsLeader {
				leader = n
				return true
			}
		}
		return false
	})
	t.Logf("new leader %s after %s", leader, time.Since(t0).Round(time.Millisecond))
	moved()
	for _, n := range survivors {
		c.pushAndDeploy(n, 10*time.Second)
	}
}

// A coordinator cut off by the network (every packet to or from it
// dropped, so gossip still calls it alive for a while): push and deploy
// work within seconds, and every agent moves within 5 s.
func TestE2E_Hung_PartitionedFollower(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" && os.Geteuid() == 0 {
			t.Fatal("iptables is not installed (apt-get install iptables) and DTK_REQUIRE_TOOLS is set")
		}
		t.Skip("needs iptables and root")
	}
	c := newHungCluster(t)
	lost := c.target(false)
	leader := c.leader()
	t0 := time.Now()
	c.partition(lost)
	moved := c.watchMove(t0, c.others(lost))
	// Straight away, while gossip still calls it alive.
	c.pushAndDeploy(leader, 5*time.Second)
	moved()
}
