package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// ServiceHistoryCmd is `dtkctl service history NAME`.
type ServiceHistoryCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON (the records, newest first, with their plan diffs)."`
}

// Run prints the service's history, newest first.
func (c *ServiceHistoryCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	recs, err := cl.ServiceHistory(ctx, c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(recs)
	}
	if len(recs) == 0 {
		out.Notef("service %s has no history yet (deploy it)\n", c.Name)
		return nil
	}
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		rows = append(rows, []string{
			strconv.FormatUint(r.Generation, 10), r.Kind, orDash(r.By), fmtTime(r.StartedMS),
			recordDuration(r), r.Result, recordCounts(r), orDash(recordNote(r)),
		})
	}
	out.Table([]string{"GEN", "KIND", "BY", "STARTED", "DURATION", "RESULT", "STEPS", "NOTE"}, rows)
	return nil
}

func fmtTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func recordDuration(r api.HistoryRecord) string {
	switch {
	case r.StartedMS == 0:
		return "-"
	case r.EndedMS == 0:
		return fmtDuration(max(time.Now().UnixMilli()-r.StartedMS, 0)) + " so far"
	default:
		return fmtDuration(max(r.EndedMS-r.StartedMS, 0))
	}
}

// recordCounts says how the steps went, leaving out the zero counts.
func recordCounts(r api.HistoryRecord) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{r.Changed, "changed"}, {r.Unchanged, "unchanged"}, {r.Failed, "failed"}, {r.Skipped, "skipped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func recordNote(r api.HistoryRecord) string {
	note := r.Message
	if r.Action != "" {
		note = strings.TrimSpace("action " + r.Action + " " + note)
	}
	return note
}

// EventsCmd is `dtkctl events`.
type EventsCmd struct {
	Follow  bool   `short:"f" help:"Keep printing events as they happen (until interrupted)."`
	JSON    bool   `help:"Print each event as one line of JSON."`
	Service string `help:"Only the events of this service." placeholder:"NAME"`
}

// followWait is how long one long-poll of --follow waits.
const followWait = 5 * time.Minute

// Run prints the recent events (those the caller may read), then with
// --follow the new ones as they come.
func (c *EventsCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	l, err := cl.Events(ctx, 0, 0)
	if err != nil {
		return err
	}
	if err := c.print(out, l.Events); err != nil {
		return err
	}
	if !c.Follow {
		if len(l.Events) == 0 && !c.JSON {
			out.Notef("no events\n")
		}
		return nil
	}
	index, delay := l.Index, time.Second
	for {
		l, err := cl.Events(ctx, index, followWait)
		var ae *api.APIError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500:
			return err
		case err != nil:
			// A coordinator going away, an election: try again.
			out.Notef("events: %v; retrying in %s\n", err, delay)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			cl.Rotate()
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = time.Second
		if len(l.Events) > 0 && l.Events[0].Index > index+1 && index > 0 && c.Service == "" && !c.JSON {
			out.Notef("(%d events not shown: passed over, or dropped from the stream while away)\n", l.Events[0].Index-index-1)
		}
		if err := c.print(out, l.Events); err != nil {
			return err
		}
		index = l.Index
	}
}

func (c *EventsCmd) print(out *Output, events []api.Event) error {
	for _, e := range events {
		if c.Service != "" && e.Service != c.Service {
			continue
		}
		if c.JSON {
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode json: %w", err)
			}
			out.Printf("%s\n", b)
			continue
		}
		out.Printf("%s\n", eventLine(e))
	}
	return nil
}

// eventLine is an event as one line: time, type, what it is about, and
// its message.
func eventLine(e api.Event) string {
	var what []string
	if e.Service != "" {
		what = append(what, e.Service)
		if e.Generation > 0 {
			what = append(what, "gen "+strconv.FormatUint(e.Generation, 10))
		}
	}
	if e.Node != "" {
		what = append(what, "node "+e.Node)
	}
	if e.Step != "" {
		what = append(what, "step "+e.Step)
	}
	if e.Coordinator != "" && !strings.Contains(e.Message, e.Coordinator) {
		what = append(what, e.Coordinator)
	}
	line := fmtTime(e.TimeMS) + "  " + e.Type
	if len(what) > 0 {
		line += "  " + strings.Join(what, " ")
	}
	if e.Message != "" {
		line += ": " + e.Message
	}
	return line
}
