package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func jsonLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, v)
	}
	return out
}

// Loggers derived before the format is chosen follow it; Raft's and
// gossip's loggers write through the same handler.
func TestHandler_SetFormat_DerivedLoggersAndLibraryLoggersFollow(t *testing.T) {
	var b bytes.Buffer
	h := NewHandler(&b, FormatText, slog.LevelDebug)
	log := slog.New(h).With("component", "agent")
	log.Info("before")
	if !strings.Contains(b.String(), "level=INFO msg=before component=agent") {
		t.Fatalf("text line: %q", b.String())
	}
	b.Reset()
	if err := h.SetFormat("yaml"); err == nil {
		t.Fatal("yaml accepted")
	}
	if err := h.SetFormat(FormatJSON); err != nil {
		t.Fatal(err)
	}
	log.Info("after", "n", 1)
	raft := HCLog(slog.New(h), "raft")
	raft.Warn("heartbeat timeout", "servers", hclog.Fmt("%d", 3))
	raft.Named("snapshot").Info("chatty")
	raft.Trace("never at debug")
	StdLogger(slog.New(h)).Print("[WARN] memberlist: refused a stream")
	StdLogger(slog.New(h)).Print("[INFO] serf: EventMemberJoin: n1")
	lines := jsonLines(t, &b)
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	want := []struct{ msg, level, component string }{
		{"after", "INFO", "agent"}, {"heartbeat timeout", "WARN", "raft"}, {"chatty", "DEBUG", "raft.snapshot"},
		{"refused a stream", "WARN", "memberlist"}, {"EventMemberJoin: n1", "DEBUG", "serf"},
	}
	for i, w := range want {
		l := lines[i]
		if l["msg"] != w.msg || l["level"] != w.level || l["component"] != w.component {
			t.Errorf("line %d = %v, want %+v", i, l, w)
		}
	}
	if lines[1]["servers"] != "3" {
		t.Errorf("hclog.Fmt not rendered: %v", lines[1]["servers"])
	}
}
