package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cluster is three coordinators and three agents, real processes, each on
// its own loopback address.
type cluster struct {
	t      *testing.T
	root   string
	coords map[string]*proc // by name
	ips    map[string]string
}

func coordArgs(root, name, ip string, join ...string) []string {
	args := []string{"--coordinator", "--no-agent", "--bootstrap-expect", "3",
		"--data-dir", filepath.Join(root, name), "--serf-addr", ip + ":7946"}
	for _, j := range join {
		args = append(args, "--join", j+":7946")
	}
	return args
}

func (c *cluster) startCoord(name string, join ...string) {
	c.coords[name] = startAgent(c.t, name, coordArgs(c.root, name, c.ips[name], join...)...)
}

func (c *cluster) addr(name string) string { return c.ips[name] + ":7070" }

// raftState asks one coordinator for the Raft configuration.
func raftState(addr string) (leader string, voters int, err error) {
	resp, err := opClient.Get("https://" + addr + "/v1/operator/raft")
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var p struct {
		Leader  string `json:"leader"`
		Servers []struct {
			Voter bool `json:"voter"`
		} `json:"servers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return "", 0, err
	}
	for _, s := range p.Servers {
		if s.Voter {
			voters++
		}
	}
	return p.Leader, voters, nil
}

func (c *cluster) waitFormed(names ...string) string {
	var leader string
	waitFor(c.t, 60*time.Second, "three voters and a leader", func() bool {
		for _, n := range names {
			l, v, err := raftState(c.addr(n))
			if err != nil || l == "" || v != 3 {
				return false
			}
			leader = l
		}
		return true
	})
	return leader
}

// runsOf reads an agent's run log: one line per step run.
func runsOf(t *testing.T, dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "agent", "runs"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func statusOn(t *testing.T, addr, name string) (status, bool) {
	out, _, code := ctl(t, addr, "service", "status", name, "--json")
	if code != 0 {
		return status{}, false
	}
	var st status
	return st, json.Unmarshal([]byte(out), &st) == nil
}

// The cluster forms by gossip alone; a deploy survives kill -9 of the leader
// mid-way and every step runs exactly once; the killed coordinator comes back
// and catches up; a full stop and restart keeps the state; and agents keep
// working, and deliver their reports later, while every coordinator is down.
func TestE2E_Cluster_FailoverRestartOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	c := &cluster{t: t, root: t.TempDir(), coords: map[string]*proc{}, ips: map[string]string{
		"c1": "127.0.0.101", "c2": "127.0.0.102", "c3": "127.0.0.103",
		"w1": "127.0.0.111", "w2": "127.0.0.112", "w3": "127.0.0.113",
	}}
	// c3 is named in --join before it is up: retry-join must cope.
	c.startCoord("c1", c.ips["c2"], c.ips["c3"])
	c.startCoord("c2", c.ips["c1"])
	c.startCoord("c3", c.ips["c1"])
	leader := c.waitFormed("c1", "c2", "c3")
	t.Logf("cluster formed, leader %s", leader)

	// Agents join through another agent or a coordinator: any member will do.
	agentDirs := map[string]string{}
	var agents []*proc
	for i, w := range []string{"w1", "w2", "w3"} {
		join := c.ips["c2"]
		if i > 0 {
			join = c.ips["w1"]
		}
		agentDirs[w] = filepath.Join(c.root, w)
		agents = append(agents, startAgent(t, w, "--data-dir", agentDirs[w], "--serf-addr", c.ips[w]+":7946",
			"--join", join+":7946", "--label", "role=worker"))
	}
	waitFor(t, 90*time.Second, "three agents up", func() bool {
		out, _, code := ctl(t, c.addr("c3"), "node", "list", "--json")
		return code == 0 && strings.Count(out, `"status": "up"`) == 3
	})

	// Push and stage through followers; deploy, then kill -9 the leader at once.
	follower := "c1"
	if leader == "c1" {
		follower = "c2"
	}
	mustCtl(t, c.addr(follower), "module", "push", "testdata/fleet")
	mustCtl(t, c.addr(follower), "service", "stage", "f", "--template", "fleet/fleet")
	mustCtl(t, c.addr(leader), "service", "deploy", "f")
	c.coords[leader].stop(syscall.SIGKILL)
	killedAt := time.Now()
	var survivors []string
	for _, n := range []string{"c1", "c2", "c3"} {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	waitFor(t, 60*time.Second, "deploy converged on the survivors", func() bool {
		st, ok := statusOn(t, c.addr(survivors[0]), "f")
		return ok && st.State == "converged"
	})
	t.Logf("converged %s after the leader was killed", time.Since(killedAt).Round(time.Millisecond))
	// Followers answer reads from their own state: the other one agrees
	// once it has applied the same entries.
	waitFor(t, 10*time.Second, "second survivor agrees", func() bool {
		st, ok := statusOn(t, c.addr(survivors[1]), "f")
		return ok && st.State == "converged" && len(st.Nodes) == 3
	})
	for w, dir := range agentDirs {
		if runs := runsOf(t, dir); len(runs) != 3 {
			t.Fatalf("%s ran %d steps, want each of 3 exactly once: %q", w, len(runs), runs)
		}
	}
	mustCtl(t, c.addr(survivors[1]), "node", "list")
	mustCtl(t, c.addr(survivors[0]), "service", "set", "f", "tag=v2")

	// The killed coordinator restarts (no --join: it rejoins from its own
	// state) and catches up.
	c.startCoord(leader)
	waitFor(t, 60*time.Second, "restarted coordinator caught up", func() bool {
		out, _, code := ctl(t, c.addr(leader), "service", "status", "f", "--json")
		return code == 0 && strings.Contains(out, `"tag": "v2"`)
	})

	// Stop every coordinator and start them again: the state is intact.
	for _, n := range []string{"c1", "c2", "c3"} {
		c.coords[n].stop(syscall.SIGTERM)
	}
	for _, n := range []string{"c1", "c2", "c3"} {
		c.startCoord(n)
	}
	c.waitFormed("c1", "c2", "c3")
	waitFor(t, 10*time.Second, "state intact after a full restart", func() bool {
		st, ok := statusOn(t, c.addr("c2"), "f")
		return ok && st.State == "converged" && st.Generation == 1
	})
	var st status

	// Deploy generation 2, then take every coordinator down while the agents
	// work on it: they finish from their cached slice, keep their reports on
	// disk, and deliver them when the coordinators are back.
	mustCtl(t, c.addr("c1"), "service", "deploy", "f")
	waitFor(t, 30*time.Second, "agents started generation 2", func() bool {
		for _, dir := range agentDirs {
			if len(runsOf(t, dir)) < 4 {
				return false
			}
		}
		return true
	})
	for _, n := range []string{"c1", "c2", "c3"} {
		c.coords[n].stop(syscall.SIGKILL)
	}
	waitFor(t, 30*time.Second, "agents finished generation 2 with no coordinator", func() bool {
		for _, dir := range agentDirs {
			if len(runsOf(t, dir)) != 6 {
				return false
			}
		}
		return true
	})
	for _, n := range []string{"c1", "c2", "c3"} {
		c.startCoord(n)
	}
	c.waitFormed("c1", "c2", "c3")
	waitFor(t, 60*time.Second, "queued reports delivered", func() bool {
		st, ok := statusOn(t, c.addr("c3"), "f")
		return ok && st.State == "converged" && st.Generation == 2
	})
	for w, dir := range agentDirs {
		runs := runsOf(t, dir)
		if len(runs) != 6 || strings.Count(strings.Join(runs, "\n"), " v2") != 3 {
			t.Fatalf("%s runs = %q, want each step once per generation", w, runs)
		}
	}

	// A node that dies shows as down within seconds, in node list and in
	// service status; it is not forgotten and comes back up on return.
	agents[2].stop(syscall.SIGKILL)
	died := time.Now()
	waitFor(t, 60*time.Second, "w3 down", func() bool {
		out, _, _ := ctl(t, c.addr("c1"), "node", "list", "--json")
		return nodeStatus(out, "w3") == "down"
	})
	t.Logf("w3 shown down %s after kill -9", time.Since(died).Round(time.Millisecond))
	st, _ = statusOn(t, c.addr("c1"), "f")
	for _, n := range st.Nodes {
		if n.Name == "w3" && n.Status != "down" {
			t.Fatalf("service status shows w3 %q, want down", n.Status)
		}
	}
	startAgent(t, "w3", "--data-dir", agentDirs["w3"], "--serf-addr", c.ips["w3"]+":7946", "--label", "role=worker")
	waitFor(t, 60*time.Second, "w3 up again", func() bool {
		out, _, _ := ctl(t, c.addr("c2"), "node", "list", "--json")
		return nodeStatus(out, "w3") == "up"
	})
}

// nodeStatus reads one node's status from `node list --json`.
func nodeStatus(out, name string) string {
	var nodes []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if json.Unmarshal([]byte(out), &nodes) != nil {
		return ""
	}
	for _, n := range nodes {
		if n.Name == name {
			return n.Status
		}
	}
	return ""
}
