package main

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
	"weak"

	"github.com/alecthomas/kong"
)

// `run` lets the command-line parser and its command tree go once the
// daemon has started: they would otherwise stay in the heap of every agent
// for its whole life (docs/performance.md, idle agent RSS).
func TestRun_ParserIsFreedWhileTheDaemonRuns(t *testing.T) {
	got := make(chan weak.Pointer[kong.Kong], 1)
	parsed = func(k *kong.Kong) { got <- weak.Make(k) }
	defer func() { parsed = nil }()
	done := make(chan int, 1)
	go func() {
		code, _, _ := runMain("run", "--config", writeFile(t, "agent.hcl", ""), "--coordinator", "--insecure", "--name", "parser",
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--serf-addr", "127.0.86.6:7946",
			"--http-addr", "127.0.86.6:0", "--raft-addr", "127.0.86.6:0", "--log-level", "error")
		done <- code
	}()
	var wp weak.Pointer[kong.Kong]
	select {
	case wp = <-got:
	case code := <-done:
		t.Fatalf("run exited with %d before parsing", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		select {
		case code := <-done:
			t.Fatalf("run exited with %d before the parser was freed", code)
		default:
		}
		if wp.Value() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the parser is still reachable 30 s after start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// run's signal.NotifyContext has SIGTERM while the daemon runs: it
	// stops the daemon, not the test.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("run did not stop after SIGTERM")
	}
}
