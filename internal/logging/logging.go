// Package logging builds dtk-agent's slog handler and routes the
// libraries' own loggers through it, so that a log is in one format: with
// log_format = "json" every line, Raft's and gossip's included, is one
// JSON object.
//
//   - Handler is a text or JSON handler whose format can be chosen after
//     loggers were derived from it (the format comes from the configuration
//     file, read after the first logger exists) and changed on reload;
//   - HCLog adapts a slog.Logger to hclog.Logger (Raft);
//   - StdLogger adapts it to the standard library's *log.Logger, reading
//     the "[LEVEL] name: message" lines serf and memberlist write.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Formats a log can be written in.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// ValidFormat reports whether f is a known format.
func ValidFormat(f string) bool { return f == FormatText || f == FormatJSON }

// root is what every handler derived from one Handler shares.
type root struct {
	w     io.Writer
	opts  slog.HandlerOptions
	gen   atomic.Uint64
	mu    sync.Mutex
	fmt   string
	built atomic.Pointer[built]
}

type built struct {
	gen uint64
	h   slog.Handler
}

func (r *root) base() (slog.Handler, uint64) {
	if b := r.built.Load(); b != nil && b.gen == r.gen.Load() {
		return b.h, b.gen
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := r.gen.Load()
	var h slog.Handler
	if r.fmt == FormatJSON {
		h = slog.NewJSONHandler(r.w, &r.opts)
	} else {
		h = slog.NewTextHandler(r.w, &r.opts)
	}
	r.built.Store(&built{gen: gen, h: h})
	return h, gen
}

// Handler writes text or JSON lines to one writer. Handlers derived with
// WithAttrs and WithGroup follow SetFormat.
type Handler struct {
	root *root
	// ops are the WithAttrs/WithGroup calls since the root, replayed on
	// the base handler when the format changes.
	ops   []func(slog.Handler) slog.Handler
	cache atomic.Pointer[built]
}

// NewHandler writes to w in format (text unless "json"), at level.
func NewHandler(w io.Writer, format string, level slog.Leveler) *Handler {
	r := &root{w: w, opts: slog.HandlerOptions{Level: level}, fmt: format}
	return &Handler{root: r}
}

// SetFormat switches every handler derived from h's root to format.
func (h *Handler) SetFormat(format string) error {
	if !ValidFormat(format) {
		return fmt.Errorf("%q is not a log format: use text or json", format)
	}
	h.root.mu.Lock()
	h.root.fmt = format
	h.root.mu.Unlock()
	h.root.gen.Add(1)
	return nil
}

// Format is the format in effect.
func (h *Handler) Format() string {
	h.root.mu.Lock()
	defer h.root.mu.Unlock()
	return h.root.fmt
}

func (h *Handler) handler() slog.Handler {
	base, gen := h.root.base()
	if c := h.cache.Load(); c != nil && c.gen == gen {
		return c.h
	}
	out := base
	for _, op := range h.ops {
		out = op(out)
	}
	h.cache.Store(&built{gen: gen, h: out})
	return out
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.root.opts.Level != nil {
		min = h.root.opts.Level.Level()
	}
	return l >= min
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	return h.handler().Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithAttrs(attrs) })
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}

func (h *Handler) derive(op func(slog.Handler) slog.Handler) *Handler {
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &Handler{root: h.root, ops: append(ops, op)}
}
