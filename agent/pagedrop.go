package agent

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/internal/pagedrop"
)

// DefaultDropPagesAfter is how long an agent waits, after its last poll
// answer or converge, before it drops its binary's resident pages.
const DefaultDropPagesAfter = 30 * time.Second

// pageDropper gives back the resident pages of the agent's own binary once
// the agent has been quiet for a while (Config.DropPages): after start-up
// has settled (the first plan poll answered) and again after every poll
// answer and converge, each time once nothing happened for
// DropPagesAfter. Package initialisers, the first converge and a
// reconcile touch a large part of the binary's code and read-only data;
// the idle agent (gossip, a long-poll every few minutes) uses a fraction
// of it. See internal/pagedrop for why this is safe: the pages stay in the
// page cache and fault back in when used.
type pageDropper struct {
	after time.Duration
	// kick is signalled on activity; nil when off.
	kick chan struct{}
	// drops counts completed drops (tests).
	drops atomic.Uint64
}

func (p *pageDropper) init(cfg Config) {
	if !cfg.DropPages || !pagedrop.Supported() {
		return
	}
	p.after = cfg.DropPagesAfter
	if p.after <= 0 {
		p.after = DefaultDropPagesAfter
	}
	p.kick = make(chan struct{}, 1)
}

// activity (re)starts the quiet period. Cheap and non-blocking; a no-op
// when dropping is off.
func (p *pageDropper) activity() {
	if p.kick == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// PageDrops counts the times the agent dropped its binary's resident pages.
func (a *Agent) PageDrops() uint64 { return a.pages.drops.Load() }

// dropLoop drops the pages once the agent has been quiet for
// DropPagesAfter since the last activity.
func (a *Agent) dropLoop(ctx context.Context) {
	p := &a.pages
	if p.kick == nil {
		return
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			t.Reset(p.after)
		case <-t.C:
			start := time.Now()
			res, err := pagedrop.Drop()
			if err != nil {
				// Harmless (nothing was dropped or the pages fault back),
				// but say so once and stop trying.
				a.log.Warn("dropping the binary's resident pages failed; not trying again", "err", err)
				return
			}
			p.drops.Add(1)
			a.log.Debug("dropped the binary's resident pages", "mappings", res.Mappings, "skipped", res.Skipped,
				"resident_kib", res.Bytes>>10, "took", time.Since(start))
		}
	}
}
