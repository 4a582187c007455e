package main

import (
	"context"
	"strconv"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// AuditCmd is `dtkctl audit`.
type AuditCmd struct {
	List AuditListCmd `cmd:"" help:"List accepted writes: who, when, from where, what."`
}

// AuditListCmd is `dtkctl audit list`.
type AuditListCmd struct {
	Service string        `help:"Only entries about this service."`
	Since   time.Duration `help:"Only entries newer than this (e.g. 24h)."`
	Limit   int           `help:"At most this many (the newest)." default:"200"`
	JSON    bool          `help:"Print JSON."`
}

// Run lists the trail.
func (c *AuditListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if c.Limit < 1 || c.Since < 0 {
		return usagef("--limit must be at least 1 and --since not negative")
	}
	since := ""
	if c.Since > 0 {
		since = c.Since.String()
	}
	l, err := cl.Audit(ctx, c.Service, since, c.Limit)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(l)
	}
	rows := make([][]string, 0, len(l.Entries))
	for _, e := range l.Entries {
		what := e.Method + " " + e.Path
		if e.Query != "" {
			what += "?" + e.Query
		}
		rows = append(rows, []string{time.UnixMilli(e.TimeMS).UTC().Format(time.RFC3339), e.Caller, orDash(e.Token), orDash(e.Remote), what, strconv.Itoa(e.Code)})
	}
	out.Table([]string{"TIME", "CALLER", "TOKEN", "FROM", "WHAT", "CODE"}, rows)
	if l.Dropped > 0 {
		out.Notef("%d older entries were dropped (the trail keeps the newest 10,000)\n", l.Dropped)
	}
	return nil
}
