package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is below debug: hclog's trace lines, never shown by a handler
// at debug.
const LevelTrace = slog.LevelDebug - 4

// HCLog is an hclog.Logger that writes through l, with "component" set to
// name. Info lines from the library are logged at debug: Raft's state
// changes are chatty at info, and what an operator must see (warnings,
// errors) keeps its level. The level a handler shows is the slog handler's
// own; SetLevel only raises the floor.
func HCLog(l *slog.Logger, name string) hclog.Logger {
	return &hcl{base: l, l: l.With("component", name), name: name, floor: hclog.Trace}
}

type hcl struct {
	// base is the logger given; l is base with the component and the
	// implied arguments.
	base    *slog.Logger
	l       *slog.Logger
	name    string
	implied []any
	floor   hclog.Level
}

var _ hclog.Logger = (*hcl)(nil)

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug, hclog.Info:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error, hclog.Off:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hcl) enabled(l hclog.Level) bool {
	return l >= h.floor && l != hclog.Off && h.l.Enabled(context.Background(), slogLevel(l))
}

func (h *hcl) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if !h.enabled(level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // the library's caller, not this adapter
	r := slog.NewRecord(time.Now(), slogLevel(level), msg, pcs[0])
	r.Add(values(args)...)
	_ = h.l.Handler().Handle(context.Background(), r)
}

// values renders what hclog formats itself: hclog.Fmt values and
// fmt.Stringers (Raft passes its state types, which JSON would show as {}).
func values(args []any) []any {
	out := make([]any, len(args))
	for i, v := range args {
		switch x := v.(type) {
		case hclog.Format:
			if len(x) > 0 {
				if f, ok := x[0].(string); ok {
					v = fmt.Sprintf(f, x[1:]...)
				}
			}
		case error:
		case fmt.Stringer:
			v = x.String()
		}
		out[i] = v
	}
	return out
}

func (h *hcl) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcl) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcl) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcl) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcl) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcl) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcl) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcl) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcl) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcl) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcl) ImpliedArgs() []any { return h.implied }

func (h *hcl) With(args ...any) hclog.Logger {
	n := *h
	n.l = h.l.With(values(args)...)
	n.implied = append(append([]any(nil), h.implied...), args...)
	return &n
}

func (h *hcl) Name() string { return h.name }

func (h *hcl) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hcl) ResetNamed(name string) hclog.Logger {
	n := *h
	n.name = name
	n.l = h.base.With("component", name).With(values(h.implied)...)
	return &n
}

func (h *hcl) SetLevel(level hclog.Level) { h.floor = level }
func (h *hcl) GetLevel() hclog.Level      { return h.floor }

func (h *hcl) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hcl) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &stdWriter{l: h.l}
}
