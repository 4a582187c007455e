package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a process's output while the test reads it.
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

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(out.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in output:\n%s", want, out.String())
}

// A running coordinator re-reads its file on SIGHUP: a valid file changes
// the log level at once and names the fields that need a restart; an
// invalid one is reported with positions and changes nothing.
func TestRun_SIGHUP_ReloadsOrKeepsConfiguration(t *testing.T) {
	dir := t.TempDir()
	base := `name = "hup"
data_dir = "` + dir + `/data"
coordinator = true
serf_addr = "127.0.86.1:7946"
http_addr = "127.0.86.1:0"
raft_addr = "127.0.86.1:0"
labels = { role = "web" }
`
	path := writeFile(t, "agent.hcl", base+"log_level = \"info\"\n")
	var out syncBuffer
	cmd := exec.Command(agentBin, "run", "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	hup := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitOutput(t, &out, "dtk-agent running")

	// Quieter: info lines stop at once.
	hup(base + "log_level = \"warn\"\n")
	waitOutput(t, &out, `msg="log level changed" component=reload level=warn`)

	// Invalid: the errors are logged with positions, nothing changes.
	hup(base + "log_level = \"debug\"\npoll_wait = \"soon\"\n")
	waitOutput(t, &out, "configuration not reloaded: keeping the running one")
	if !strings.Contains(out.String(), path+`:9:13: poll_wait: \"soon\" is not a duration`) {
		t.Errorf("no positioned error:\n%s", out.String())
	}
	if s := out.String(); strings.Contains(s, `msg="configuration reloaded"`) || strings.Contains(s, "level=DEBUG") {
		t.Errorf("info line at warn level, or debug from an invalid file:\n%s", s)
	}

	// Valid again, with a field that needs a restart.
	next := strings.NewReplacer(`127.0.86.1:7946`, `127.0.86.2:7946`, `role = "web"`, `role = "db"`).Replace(base)
	hup(next + "log_level = \"debug\"\n")
	waitOutput(t, &out, `msg="changed, takes effect after a restart" component=reload field=serf_addr`)
	waitOutput(t, &out, `msg="log level changed" component=reload level=debug`)
	waitOutput(t, &out, `msg="configuration reloaded"`)
	// Labels change at run time once the agent can take them
	// (agent.SetLabels); until then the reload says they need a restart.
	if s := out.String(); !strings.Contains(s, `msg="labels changed"`) && !strings.Contains(s, `msg="not applied" component=reload field=labels`) {
		t.Errorf("nothing said about the labels:\n%s", s)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", waitErr, out.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no exit 40 s after SIGTERM")
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("no graceful shutdown:\n%s", out.String())
	}
	if testing.Verbose() {
		t.Logf("dtk-agent output:\n%s", out.String())
	}
}
