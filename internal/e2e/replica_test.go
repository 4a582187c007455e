package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// planPolls asks a coordinator how many plan long-polls it serves.
func planPolls(addr string) int {
	resp, err := opClient.Get("https://" + addr + "/v1/status")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		PlanPolls int `json:"plan_polls"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	return st.PlanPolls
}

// raftSuffrage maps each server in the Raft configuration to voter or not.
func raftSuffrage(addr string) map[string]bool {
	resp, err := opClient.Get("https://" + addr + "/v1/operator/raft")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var p struct {
		Servers []struct {
			ID    string `json:"id"`
			Voter bool   `json:"voter"`
		} `json:"servers"`
	}
	if json.NewDecoder(resp.Body).Decode(&p) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, s := range p.Servers {
		out[s.ID] = s.Voter
	}
	return out
}

// TestE2E_ReadReplicas_ServeAgentsForwardWritesAndFailOver runs three voters,
// two read replicas and three agents: the replicas join as non-voters and
// stay so, the agents poll the replicas (not the voters), a deploy sent to a
// replica commits, and killing one replica -9 moves its agents to the
// other within 5 s.
func TestE2E_ReadReplicas_ServeAgentsForwardWritesAndFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	c := &cluster{t: t, root: t.TempDir(), coords: map[string]*proc{}, ips: map[string]string{
		"c1": "127.0.0.140", "c2": "127.0.0.141", "c3": "127.0.0.142",
		"r1": "127.0.0.143", "r2": "127.0.0.144",
		"w1": "127.0.0.145", "w2": "127.0.0.146", "w3": "127.0.0.147",
	}}
	c.startCoord("c1", c.ips["c2"], c.ips["c3"])
	c.startCoord("c2", c.ips["c1"])
	c.startCoord("c3", c.ips["c1"])
	c.waitFormed("c1", "c2", "c3")
	for _, r := range []string{"r1", "r2"} {
		c.coords[r] = startAgent(t, r, append(coordArgs(c.root, r, c.ips[r], c.ips["c1"]), "--read-replica")...)
	}
	waitFor(t, 60*time.Second, "both replicas in the Raft configuration as non-voters", func() bool {
		s := raftSuffrage(c.addr("c1"))
		v1, ok1 := s["r1"]
		v2, ok2 := s["r2"]
		return ok1 && ok2 && !v1 && !v2 && len(s) == 5
	})
	for _, w := range []string{"w1", "w2", "w3"} {
		startAgent(t, w, "--data-dir", c.root+"/"+w, "--serf-addr", c.ips[w]+":7946",
			"--join", c.ips["c1"]+":7946", "--label", "role=worker")
	}
	waitFor(t, 60*time.Second, "the three agents polling the replicas", func() bool {
		return planPolls(c.addr("r1"))+planPolls(c.addr("r2")) == 3
	})
	for _, v := range []string{"c1", "c2", "c3"} {
		if n := planPolls(c.addr(v)); n != 0 {
			t.Fatalf("voter %s serves %d plan polls, want 0 (agents prefer replicas)", v, n)
		}
	}
	// Writes sent to a replica are forwarded to the leader and commit.
	mustCtl(t, c.addr("r1"), "module", "push", "testdata/fleet")
	mustCtl(t, c.addr("r1"), "service", "stage", "f", "--template", "fleet/fleet")
	mustCtl(t, c.addr("r1"), "service", "deploy", "f", "--wait")

	// Kill the replica that serves the most agents: they move to the other.
	victim, other := "r1", "r2"
	if planPolls(c.addr("r2")) > planPolls(c.addr("r1")) {
		victim, other = "r2", "r1"
	}
	c.coords[victim].stop(syscall.SIGKILL)
	killed := time.Now()
	waitFor(t, 5*time.Second, "the killed replica's agents polling "+other, func() bool {
		return planPolls(c.addr(other)) == 3
	})
	t.Logf("agents moved to %s %s after %s was killed", other, time.Since(killed).Round(time.Millisecond), victim)
	// Still non-voters, and the cluster still takes writes.
	if s := raftSuffrage(c.addr("c2")); s[other] {
		t.Fatalf("replica %s was promoted: %v", other, s)
	}
	mustCtl(t, c.addr(other), "service", "set", "f", "tag=v2")
	if out := mustCtl(t, c.addr(other), "service", "deploy", "f", "--wait"); !strings.Contains(out, "converged at generation 2") {
		t.Fatalf("deploy through the surviving replica: %s", out)
	}
}
