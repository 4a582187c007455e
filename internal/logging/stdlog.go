package logging

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// StdLogger is a *log.Logger whose lines go to l. Lines that start with a
// "[LEVEL]" tag, as serf's and memberlist's do, are logged at that level
// (info demoted to debug, as for Raft), with the "name: " prefix after the
// tag taken as the component; others are logged at debug.
func StdLogger(l *slog.Logger) *log.Logger {
	return log.New(&stdWriter{l: l}, "", 0)
}

type stdWriter struct{ l *slog.Logger }

var stdLevels = map[string]slog.Level{
	"TRACE": LevelTrace, "DEBUG": slog.LevelDebug, "INFO": slog.LevelDebug,
	"WARN": slog.LevelWarn, "WARNING": slog.LevelWarn, "ERR": slog.LevelError, "ERROR": slog.LevelError,
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		w.line(strings.TrimSpace(string(line)))
	}
	return len(p), nil
}

func (w *stdWriter) line(s string) {
	if s == "" {
		return
	}
	level := slog.LevelDebug
	if strings.HasPrefix(s, "[") {
		if tag, rest, ok := strings.Cut(s[1:], "]"); ok {
			if l, known := stdLevels[strings.ToUpper(strings.TrimSpace(tag))]; known {
				level, s = l, strings.TrimSpace(rest)
			}
		}
	}
	l := w.l
	if name, rest, ok := strings.Cut(s, ": "); ok && name != "" && !strings.ContainsAny(name, " =") {
		l, s = l.With("component", name), rest
	}
	if l.Enabled(context.Background(), level) {
		l.Log(context.Background(), level, s)
	}
}
