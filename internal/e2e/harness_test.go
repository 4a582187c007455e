package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries built once for the whole package, with the release flags.
var bin struct{ agent, ctl string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dtk-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.agent, bin.ctl = filepath.Join(dir, "dtk-agent"), filepath.Join(dir, "dtkctl")
	for out, pkg := range map[string]string{bin.agent: "./cmd/dtk-agent", bin.ctl: "./cmd/dtkctl"} {
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version=e2e", "-o", out, pkg)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	if err := setupPKI(dir); err != nil {
		fmt.Fprintln(os.Stderr, "test PKI:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a dtk-agent process with its output captured.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startAgent starts `dtk-agent run args...` and stops it at cleanup.
func startAgent(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin.agent, append([]string{"run", "--name", name}, secureArgs(t, name, args)...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.Output())
		}
	})
	return p
}

// stop signals the process and waits for it (SIGKILL after 20s).
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// ctl runs dtkctl against addr and returns stdout, stderr and exit code.
func ctl(t *testing.T, addr string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.ctl, append(ctlTLSArgs(addr), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dtkctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// mustCtl runs dtkctl and fails the test unless it exits 0.
func mustCtl(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, errOut, code := ctl(t, addr, args...)
	if code != 0 {
		t.Fatalf("dtkctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLeader waits until the coordinator at addr knows a Raft leader.
func waitLeader(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 60*time.Second, "a raft leader at "+addr, func() bool {
		resp, err := opClient.Get("https://" + addr + "/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Leader string `json:"leader"`
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Leader != ""
	})
}
