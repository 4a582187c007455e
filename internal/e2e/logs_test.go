package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startCoordAndNode starts a coordinator and one agent (named and labelled
// role=name) and returns the API address once the node is up.
func startCoordAndNode(t *testing.T, root, coordIP, nodeIP, name string) string {
	t.Helper()
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"),
		"--serf-addr", coordIP+":7946")
	startAgent(t, name, "--data-dir", filepath.Join(root, name), "--serf-addr", nodeIP+":7946",
		"--join="+coordIP+":7946", "--label", "role="+name)
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "the node registered", func() bool {
		out, _, code := ctl(t, addr, "node", "list", "--json")
		return code == 0 && strings.Contains(out, `"status": "up"`)
	})
	return addr
}

// stageOneStep pushes a module NAME whose template "t" puts one component,
// whose create action is the given HCL, on the node labelled role=NAME,
// and stages it as service svc.
func stageOneStep(t *testing.T, addr, root, name, svc, create string) {
	t.Helper()
	hcl := fmt.Sprintf(`module {
  name    = %[1]q
  version = "1.0.0"
}

component "step" {
  create {
    %[2]s
  }
  delete {
    inline = "true"
  }
}

template "t" {
  node "n" {
    labels = { role = %[1]q }
    component "step" "step" {}
  }
}
`, name, create)
	pushModule(t, addr, root, name, hcl)
	mustCtl(t, addr, "service", "stage", svc, "--template", name+"/t")
}

// Reports carry a bounded tail of a step's output; the whole log stays on
// the agent and `dtkctl service logs` fetches it on demand.
func TestE2E_Logs_TailInStateFullLogFromTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	addr := startCoordAndNode(t, root, "127.0.0.220", "127.0.0.221", "chatty")

	// 1,500 numbered lines: about 43 KB, well over the 4 KiB report tail.
	stageOneStep(t, addr, root, "chatty", "chat", `inline = "for i in $(seq 1 1500); do echo \"line $i of the chatty step\"; done"`)
	mustCtl(t, addr, "service", "deploy", "chat", "--wait")

	// What the coordinators keep: the tail, cut with a marker.
	tail := mustCtl(t, addr, "service", "logs", "chat", "--tail")
	if !strings.Contains(tail, "line 1500 of") || strings.Contains(tail, "line 1 of") {
		t.Fatalf("the reported tail should end the log, without its start:\n%.600s", tail)
	}
	if len(tail) > 8<<10 {
		t.Fatalf("the reported tail is %d bytes", len(tail))
	}
	// What the agent keeps: all of it.
	full := mustCtl(t, addr, "service", "logs", "chat")
	if !strings.Contains(full, "line 1 of the chatty step") || !strings.Contains(full, "line 1500 of") {
		t.Fatalf("service logs should fetch the whole log from the agent:\n%.600s", full)
	}
	if n := strings.Count(full, "of the chatty step"); n != 1500 {
		t.Fatalf("service logs printed %d of 1500 lines", n)
	}
	// --bytes bounds what is fetched, and says what it left out.
	short := mustCtl(t, addr, "service", "logs", "chat", "--bytes", "1000")
	if strings.Contains(short, "line 1 of") || !strings.Contains(short, "line 1500 of") || !strings.Contains(short, "left out") {
		t.Fatalf("--bytes 1000:\n%.600s", short)
	}
	if _, errOut, code := ctl(t, addr, "service", "logs", "chat", "--bytes", "0"); code != 2 || !strings.Contains(errOut, "--bytes") {
		t.Fatalf("--bytes 0: exit %d, %s", code, errOut)
	}
}

// syncBuffer is a bytes.Buffer safe to write from a process and read from
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `service logs --follow` shows a step's output while it runs (the agent
// reports its log's end every few seconds), not only when it ends.
func TestE2E_Logs_FollowStreamsARunningStep(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	addr := startCoordAndNode(t, root, "127.0.0.222", "127.0.0.223", "slow")
	// The step ticks for 30 s, or until the test creates the stop file.
	stop := filepath.Join(root, "stop")
	stageOneStep(t, addr, root, "slow", "tick",
		`inline  = "for i in $(seq 1 60); do echo \"tick $i\"; [ -e `+stop+` ] && break; sleep 0.5; done; echo finished"
    timeout = "2m"`)
	mustCtl(t, addr, "service", "deploy", "tick")

	ctx, cancel := context.WithCancel(context.Background())
	follow := exec.CommandContext(ctx, bin.ctl, append(ctlTLSArgs(addr), "service", "logs", "tick", "--follow")...)
	var out syncBuffer
	follow.Stdout, follow.Stderr = &out, &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // --follow runs until stopped
		follow.Wait()
	}()
	waitFor(t, 20*time.Second, "ticks shown while the step runs", func() bool {
		return strings.Contains(out.String(), "tick 3")
	})
	if st := getStatus(t, addr, "tick"); st.State == "converged" || strings.Contains(out.String(), "finished") {
		t.Fatalf("the step had already ended (%s): nothing was streamed\n%s", st.State, out.String())
	}
	os.WriteFile(stop, nil, 0o644)
	waitFor(t, 30*time.Second, "the end of the step shown", func() bool {
		return strings.Contains(out.String(), "finished") && strings.Contains(out.String(), ": ok")
	})
	// Each tick once: the pieces do not repeat what was shown.
	if n := strings.Count(out.String(), "tick 2\n"); n != 1 {
		t.Fatalf("tick 2 printed %d times:\n%s", n, out.String())
	}
}
