package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rolloutStatus is what the rollout test reads of `service status --json`.
type rolloutStatus struct {
	State      string `json:"state"`
	Generation uint64 `json:"generation"`
	Nodes      []struct {
		Name    string `json:"name"`
		Rollout string `json:"rollout"`
		Steps   []struct {
			State      string `json:"state"`
			Generation uint64 `json:"generation"`
			StartedAt  int64  `json:"started_at_ms"`
			FinishedAt int64  `json:"finished_at_ms"`
		} `json:"steps"`
	} `json:"nodes"`
	Rollout *struct {
		Generation uint64   `json:"generation"`
		Status     string   `json:"status"`
		Canary     []string `json:"canary"`
		Admitted   []string `json:"admitted"`
		Waiting    []string `json:"waiting"`
		Failed     []string `json:"failed"`
		Reason     string   `json:"reason"`
	} `json:"rollout"`
}

func rolloutStatusOn(t *testing.T, addr string) (rolloutStatus, bool) {
	out, _, code := ctl(t, addr, "service", "status", "web", "--json")
	var st rolloutStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return st, false
	}
	return st, true
}

// run is one line of an agent's runs file: "STEP TAG START END".
type run struct {
	tag        string
	start, end int64
}

func runsWithTimes(t *testing.T, dir string) []run {
	var out []run
	for _, l := range runsOf(t, dir) {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("bad run line %q", l)
		}
		s, _ := strconv.ParseInt(f[2], 10, 64)
		e, _ := strconv.ParseInt(f[3], 10, 64)
		out = append(out, run{f[1], s, e})
	}
	return out
}

// TestE2E_Rollout_OneAtATimeLeaderKillAndAutoRevert drives a rollout
// through five real agents and three coordinators: the canary first, then
// one node at a time (checked from the runs' own timestamps), the leader
// killed -9 between two batches (no batch run twice or skipped), and a
// failing canary reverted on the canary only.
func TestE2E_Rollout_OneAtATimeLeaderKillAndAutoRevert(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	c := &cluster{t: t, root: t.TempDir(), coords: map[string]*proc{}, ips: map[string]string{
		"c1": "127.0.0.120", "c2": "127.0.0.121", "c3": "127.0.0.122",
	}}
	agents := []string{"w1", "w2", "w3", "w4", "w5"}
	for i, w := range agents {
		c.ips[w] = fmt.Sprintf("127.0.0.%d", 123+i)
	}
	c.startCoord("c1", c.ips["c2"], c.ips["c3"])
	c.startCoord("c2", c.ips["c1"])
	c.startCoord("c3", c.ips["c1"])
	leader := c.waitFormed("c1", "c2", "c3")
	dirs := map[string]string{}
	for _, w := range agents {
		dirs[w] = filepath.Join(c.root, w)
		startAgent(t, w, "--data-dir", dirs[w], "--serf-addr", c.ips[w]+":7946",
			"--join", c.ips["c1"]+":7946", "--label", "role=web")
	}
	waitFor(t, 90*time.Second, "five agents up", func() bool {
		out, _, code := ctl(t, c.addr("c1"), "node", "list", "--json")
		return code == 0 && strings.Count(out, `"status": "up"`) == 5
	})
	mustCtl(t, c.addr("c1"), "module", "push", "testdata/rollout")
	mustCtl(t, c.addr("c1"), "service", "stage", "web", "--template", "rollout/web")
	mustCtl(t, c.addr("c1"), "service", "deploy", "web", "--wait", "--all-at-once")

	// Generation 2 rolls out: canary, then one at a time, each healthy
	// for 2 s before the next. Kill the leader once the second node is
	// healthy, while the rollout waits for its min_healthy_time.
	mustCtl(t, c.addr("c1"), "service", "set", "web", "tag=v2")
	out := mustCtl(t, c.addr(leader), "service", "deploy", "web")
	if !strings.Contains(out, "rolling out to 5 nodes: 1 canary first, at most 1 at a time") {
		t.Fatalf("deploy output: %s", out)
	}
	var order []string
	waitFor(t, 60*time.Second, "the second node of the rollout healthy", func() bool {
		st, ok := rolloutStatusOn(t, c.addr(leader))
		if !ok || st.Rollout == nil || st.Rollout.Generation != 2 || len(st.Rollout.Admitted) < 2 {
			return false
		}
		second := st.Rollout.Admitted[1]
		for _, n := range st.Nodes {
			if n.Name == second {
				return n.Steps[0].Generation == 2 && n.Steps[0].State == "ok"
			}
		}
		return false
	})
	c.coords[leader].stop(syscall.SIGKILL)
	var survivor string
	for _, n := range []string{"c1", "c2", "c3"} {
		if n != leader {
			survivor = n
			break
		}
	}
	waitFor(t, 120*time.Second, "the rollout done on the survivors", func() bool {
		st, ok := rolloutStatusOn(t, c.addr(survivor))
		if ok && st.Rollout != nil && st.Rollout.Status == "done" && st.State == "converged" {
			order = append(st.Rollout.Admitted[:0:0], st.Rollout.Admitted...)
			return true
		}
		return false
	})
	if len(order) != 5 {
		t.Fatalf("rollout order %v", order)
	}
	// Each node ran generation 2 exactly once, in the rollout's order, and
	// no two ran at the same time (their runs' own clocks).
	var prev run
	for i, w := range order {
		var v2 []run
		for _, r := range runsWithTimes(t, dirs[w]) {
			if r.tag == "v2" {
				v2 = append(v2, r)
			}
		}
		if len(v2) != 1 {
			t.Fatalf("%s ran v2 %d times, want once (a batch restarted or skipped)", w, len(v2))
		}
		if i > 0 && v2[0].start < prev.end {
			t.Fatalf("%s started v2 at %d, before %s (the one before it) ended at %d", w, v2[0].start, order[i-1], prev.end)
		}
		prev = v2[0]
	}
	// Status timestamps say the same.
	st, _ := rolloutStatusOn(t, c.addr(survivor))
	type span struct{ s, e int64 }
	var spans []span
	for _, n := range st.Nodes {
		spans = append(spans, span{n.Steps[0].StartedAt, n.Steps[0].FinishedAt})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.s - b.s) })
	for i := 1; i < len(spans); i++ {
		if spans[i].s < spans[i-1].e {
			t.Fatalf("steps overlap in status: %v", spans)
		}
	}

	// Generation 3 fails on its canary: the rollout stops, auto-revert
	// deploys generation 2's plan again as generation 4, on the canary
	// only; no other node runs anything.
	before := map[string]int{}
	for _, w := range agents {
		before[w] = len(runsOf(t, dirs[w]))
	}
	mustCtl(t, c.addr(survivor), "service", "set", "web", "tag=v3", "fail=true")
	stdout, stderr, code := ctl(t, c.addr(survivor), "service", "deploy", "web", "--wait")
	if code != 1 || !strings.Contains(stderr, "auto-revert deployed generation 4") {
		t.Fatalf("deploy of a failing canary: exit %d\n%s\n%s", code, stdout, stderr)
	}
	st, _ = rolloutStatusOn(t, c.addr(survivor))
	if st.Generation != 4 || st.State != "converged" || st.Rollout == nil || st.Rollout.Status != "reverted" || len(st.Rollout.Canary) != 1 {
		t.Fatalf("after auto-revert: %+v", st)
	}
	canary := st.Rollout.Canary[0]
	for _, w := range agents {
		runs := runsWithTimes(t, dirs[w])
		added := runs[before[w]:]
		if w != canary {
			if len(added) != 0 {
				t.Fatalf("%s is not the canary but ran %v", w, added)
			}
			continue
		}
		if len(added) != 2 || added[0].tag != "v3" || added[1].tag != "v2" {
			t.Fatalf("canary %s ran %v, want v3 (failed) then v2 (the revert)", w, added)
		}
	}
	hist := mustCtl(t, c.addr(survivor), "service", "history", "web")
	if !strings.Contains(hist, "auto-revert to generation 2") {
		t.Fatalf("history:\n%s", hist)
	}
}
