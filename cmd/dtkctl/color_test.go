package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// fakeTerminal makes run believe stdout is a terminal.
func fakeTerminal(t *testing.T) {
	t.Helper()
	old := isTerminal
	isTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { isTerminal = old })
}

// States are coloured on a terminal, and not at all with NO_COLOR (any
// non-empty value), with --no-color, with TERM=dumb or without a terminal.
func TestColor_OnlyOnATerminal_OffWithNoColor(t *testing.T) {
	f := newFake(t)
	st := testStatus(3, "failed", step("index", "ok", 0, 9, 3), step("db", "failed", 1, 9, 3))
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, st) })
	status := func(env map[string]string, args ...string) string {
		env["DTK_ADDR"] = f.addr()
		r := runCLIEnv(t, env, append(args, "service", "status", "web")...)
		r.check(t, exitOK)
		return r.stdout
	}

	plain := status(map[string]string{})
	if strings.Contains(plain, "\x1b") {
		t.Errorf("escape sequences without a terminal:\n%q", plain)
	}

	fakeTerminal(t)
	colored := status(map[string]string{"TERM": "xterm"})
	for _, want := range []string{"\x1b[31mfailed\x1b[0m", "\x1b[32munchanged\x1b[0m"} {
		if !strings.Contains(colored, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, colored)
		}
	}
	// Columns still line up: the escapes take no room.
	if !strings.Contains(colored, "agent-1  index/index (index-comp)  create  \x1b[32munchanged\x1b[0m  0     9ms") {
		t.Errorf("coloured table misaligned:\n%s", colored)
	}
	for name, out := range map[string]string{
		"NO_COLOR=1":  status(map[string]string{"TERM": "xterm", "NO_COLOR": "1"}),
		"NO_COLOR=no": status(map[string]string{"TERM": "xterm", "NO_COLOR": "no"}),
		"--no-color":  status(map[string]string{"TERM": "xterm"}, "--no-color"),
		"TERM=dumb":   status(map[string]string{"TERM": "dumb"}),
	} {
		if strings.Contains(out, "\x1b") {
			t.Errorf("%s: escape sequences:\n%q", name, out)
		}
		if out != plain {
			t.Errorf("%s: output differs from the plain one:\n%s\nwant:\n%s", name, out, plain)
		}
	}
}
