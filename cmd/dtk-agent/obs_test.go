package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// log_format = "json" in the file makes every line of a coordinator's log
// a JSON object, Raft's and gossip's lines included (they go through the
// same handler).
func TestRun_LogFormatJSON_EveryLineIsJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, "agent.hcl", "log_format = \"json\"\nlog_level = \"debug\"\n")
	p := startAgent(t, "run", "--config", cfg, "--coordinator", "--insecure", "--name", "jsonlog",
		"--data-dir", filepath.Join(dir, "data"), "--serf-addr", "127.0.0.230:7946",
		"--http-addr", "127.0.0.230:0", "--raft-addr", "127.0.0.230:0")
	waitOutput(t, p.out, `"msg":"dtk-agent running"`)
	waitOutput(t, p.out, `"component":"raft"`) // Raft's hclog lines
	waitOutput(t, p.out, `"component":"serf"`) // serf's std logger (memberlist's takes the same path)
	p.stop(t)
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d lines", len(lines))
	}
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("line %d is not JSON (%v): %s", i+1, err, l)
			continue
		}
		if v["level"] == nil || v["msg"] == nil || v["time"] == nil {
			t.Errorf("line %d lacks time, level or msg: %s", i+1, l)
		}
	}
}

// listeners lists the TCP addresses process pid listens on (/proc).
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[3] == "0A" && inodes[f[9]] { // 0A: LISTEN
			out = append(out, f[1])
		}
	}
	return out
}

// An agent serves metrics only when asked (--metrics-addr); without it,
// it opens no listener beyond a coordinator's own.
func TestRun_AgentMetrics_OnlyWithMetricsAddr(t *testing.T) {
	empty := writeFile(t, "agent.hcl", "")
	start := func(ip string, extra ...string) *agentProc {
		args := append([]string{"run", "--config", empty, "--coordinator", "--insecure", "--name", "m" + strings.ReplaceAll(ip, ".", "-"),
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--serf-addr", ip + ":7946",
			"--http-addr", ip + ":0", "--raft-addr", ip + ":0"}, extra...)
		p := startAgent(t, args...)
		waitOutput(t, p.out, "dtk-agent running")
		waitOutput(t, p.out, `msg=registered`)
		return p
	}
	off := start("127.0.0.231")
	on := start("127.0.0.232", "--metrics-addr", "127.0.0.232:0")
	m := regexp.MustCompile(`msg="serving metrics" .*addr=(\S+)`).FindStringSubmatch(on.out.String())
	if m == nil {
		t.Fatalf("no metrics address in the output:\n%s", on.out.String())
	}
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		// The first poll is answered before the converge it brings is timed.
		if regexp.MustCompile(`(?m)^dtk_agent_last_poll_success_timestamp_seconds [1-9]`).MatchString(body) &&
			strings.Contains(body, "dtk_agent_converge_duration_seconds_count") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful poll in the agent's metrics:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"dtk_agent_outbox_reports", "dtk_agent_converge_duration_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("agent metrics lack %s", want)
		}
	}
	if strings.Contains(off.out.String(), "serving metrics") {
		t.Errorf("metrics served without --metrics-addr")
	}
	// Without --metrics-addr the process listens only where its log says:
	// the API, Raft and gossip; with it, on the metrics address too.
	ports := func(p *agentProc) map[int]bool {
		m := regexp.MustCompile(`msg="coordinator started" .*http=\S+:(\d+) raft=\S+:(\d+)`).FindStringSubmatch(p.out.String())
		if m == nil {
			t.Fatalf("no addresses in the output:\n%s", p.out.String())
		}
		var h, r int
		fmt.Sscan(m[1], &h)
		fmt.Sscan(m[2], &r)
		return map[int]bool{h: true, r: true, 7946: true}
	}
	check := func(p *agentProc, extra int) {
		allowed := ports(p)
		if extra != 0 {
			allowed[extra] = true
		}
		got := listeners(t, p.cmd.Process.Pid)
		seen := map[int]bool{}
		for _, l := range got {
			var port int
			fmt.Sscanf(l[strings.LastIndex(l, ":")+1:], "%X", &port)
			seen[port] = true
			if !allowed[port] {
				t.Errorf("listens on port %d, not one it was given (%v)", port, got)
			}
		}
		if extra != 0 && !seen[extra] {
			t.Errorf("metrics port %d not among the listeners %v", extra, got)
		}
	}
	check(off, 0)
	var metricsPort int
	fmt.Sscan(m[1][strings.LastIndex(m[1], ":")+1:strings.LastIndex(m[1], "/metrics")], &metricsPort)
	check(on, metricsPort)
	off.stop(t)
	on.stop(t)
}
