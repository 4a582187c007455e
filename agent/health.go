package agent

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/plan"
)

// healthInterval is how often a step's check runs while its health is
// verified: a fifth of the time, between 1 s and 5 s.
func healthInterval(total time.Duration) time.Duration {
	return min(5*time.Second, max(time.Second, total/5))
}

// verifyHealth runs a create step's check every healthInterval for
// st.HealthSeconds after a successful run (a rollout with health =
// "check" asks for it): nil when every check passed, else why not. The
// step stays running meanwhile; each passing check reports a running
// report whose output is the run's with "verifying health: 10s of 30s"
// lines after it. A cancel of the service, or the agent's shutdown (which
// the caller does not count as a failure), ends it at once.
func (a *Agent) verifyHealth(ctx context.Context, st *plan.Step, running plan.Report, runOutput string) error {
	total := time.Duration(st.HealthSeconds) * time.Second
	interval := healthInterval(total)
	// Registered for the whole verification, so that a cancel between
	// two checks wakes the wait below.
	vctx, done := a.running.start(ctx, st.Service)
	defer done()
	start := time.Now()
	cancelled := func() error {
		return fmt.Errorf("cancelled while verifying health, %s of %s after the run", seconds(time.Since(start)), seconds(total))
	}
	if a.running.isCancelled(st.Service) { // before it was registered
		return cancelled()
	}
	progress := strings.TrimSuffix(runOutput, "\n")
	report := func(elapsed time.Duration) {
		progress = tailString(progress+fmt.Sprintf("\nverifying health: %s of %s", seconds(elapsed), seconds(total)), actions.TailBytes)
		r := running
		r.Output = strings.TrimPrefix(progress, "\n") + "\n"
		a.enqueueRunning(r)
	}
	report(0)
	for next := interval; ; next += interval {
		wait := time.NewTimer(min(next, total) - time.Since(start))
		select {
		case <-vctx.Done():
			wait.Stop()
			return cancelled()
		case <-wait.C:
		}
		res, drift := a.runCheck(vctx, st)
		if vctx.Err() != nil || a.running.isCancelled(st.Service) {
			return cancelled()
		}
		elapsed := time.Since(start)
		if drift {
			a.log.Warn("health check failed", "step", st.ID, "after", elapsed.Round(time.Second), "exit", res.ExitCode)
			return fmt.Errorf("health check failed %s after the run: %s", seconds(elapsed), strings.Join(checkFindings(res), "\n"))
		}
		if elapsed >= total {
			a.log.Info("health verified", "step", st.ID, "for", total)
			return nil
		}
		report(elapsed)
	}
}

// checkTail is what a failed check said: the end of its output, else its
// error or exit code.
func checkTail(res actions.Result) string {
	if out := strings.TrimSpace(tailString(res.Output, 512)); out != "" {
		return out
	}
	if res.Err != nil {
		return res.Err.Error()
	}
	return fmt.Sprintf("exit code %d", res.ExitCode)
}

// tailString is the end of s, at most limit bytes, starting at a line
// when it is cut.
func tailString(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	s = s[len(s)-limit:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		return s[i+1:]
	}
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

// seconds prints a duration in whole seconds ("12s").
func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
