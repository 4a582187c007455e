package api

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Deadlines. A coordinator can hang rather than die (SIGSTOP, a paused VM,
// a deadlock, a partition that drops packets): its kernel still accepts
// connections and acknowledges bytes, so only the application notices. Every
// request therefore has a bound:
//
//   - an ordinary read: Client.Timeout (DefaultTimeout) for the whole
//     exchange, answer body included; an ordinary write:
//     Client.WriteTimeout (DefaultWriteTimeout), since a coordinator holds
//     a write while the cluster elects a new leader;
//   - a long-poll (wait > 0): wait + Client.LongPollMargin;
//   - a transfer (module upload, blob download, snapshot): no overall bound,
//     but TransferIdle without a byte moving ends it, and the answer to an
//     upload must start within TransferAnswer of its last byte.
//
// Inside those bounds the transport finds a hung coordinator sooner, also in
// the middle of a five-minute long-poll: connections speak HTTP/2 (the
// coordinators offer it over TLS) and the client sends a PING after
// PingInterval without a frame from the server; no answer within
// PingTimeout closes the connection and fails every request on it.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultWriteTimeout   = 15 * time.Second
	DefaultLongPollMargin = 10 * time.Second
	TransferIdle          = 10 * time.Second
	TransferAnswer        = 30 * time.Second
	PingInterval          = 2 * time.Second
	PingTimeout           = 2 * time.Second
	DialTimeout           = 2 * time.Second
	TLSHandshakeTimeout   = 3 * time.Second
)

// ErrTimeout means a coordinator did not answer in time; the client has
// moved on to the next coordinator for the following call. It does not
// wrap context.DeadlineExceeded: the caller's own context did not end, and
// retrying (elsewhere) is worthwhile.
var ErrTimeout = errors.New("coordinator did not answer in time")

// Watchdog cancels a request's context (with cause ErrTimeout) when a phase
// of it overruns: the caller kicks it with the time the next phase may take.
// Coordinators use it for their calls to each other too.
type Watchdog struct {
	mu     sync.Mutex
	t      *time.Timer
	cancel context.CancelCauseFunc
	done   bool
}

// NewWatchdog returns a context that is cancelled with ErrTimeout unless
// kicked within first, and the Watchdog that guards it; Stop releases it.
func NewWatchdog(ctx context.Context, first time.Duration) (context.Context, *Watchdog) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &Watchdog{cancel: cancel}
	w.t = time.AfterFunc(first, func() { cancel(ErrTimeout) })
	return ctx, w
}

// Kick gives the request d more (from now).
func (w *Watchdog) Kick(d time.Duration) {
	w.mu.Lock()
	if !w.done {
		w.t.Reset(d)
	}
	w.mu.Unlock()
}

// Stop releases the context (the request is over).
func (w *Watchdog) Stop() {
	w.mu.Lock()
	w.done = true
	w.t.Stop()
	w.mu.Unlock()
	w.cancel(context.Canceled)
}

// Reader returns r kicking the Watchdog with idle on every read that moves
// bytes: a transfer may take as long as it keeps moving.
func (w *Watchdog) Reader(r io.Reader, idle time.Duration) io.Reader {
	return &progressReader{r: r, w: w, idle: idle}
}

// progressReader kicks a Watchdog with idle on every read that moves bytes,
// and with atEOF at the end (an upload's body: the answer may take longer
// than a gap between two chunks).
type progressReader struct {
	r           io.Reader
	w           *Watchdog
	idle, atEOF time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.Kick(p.idle)
	}
	if err == io.EOF && p.atEOF > 0 {
		p.w.Kick(p.atEOF)
	}
	return n, err
}

// guardedBody is an answer body that keeps its request's Watchdog fed while
// bytes arrive and releases it on Close; a read cut off by the Watchdog
// reports ErrTimeout and moves the client on.
type guardedBody struct {
	io.ReadCloser
	ctx     context.Context
	w       *Watchdog
	idle    time.Duration
	onTimer func()
	once    sync.Once
}

func (g *guardedBody) Read(b []byte) (int, error) {
	n, err := g.ReadCloser.Read(b)
	if n > 0 && g.idle > 0 {
		g.w.Kick(g.idle)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(g.ctx), ErrTimeout) {
		g.once.Do(g.onTimer)
		return n, ErrTimeout
	}
	return n, err
}

func (g *guardedBody) Close() error {
	err := g.ReadCloser.Close()
	g.w.Stop()
	return err
}
