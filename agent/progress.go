package agent

import (
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/plan"
)

// progressEvery is how often a running step's output tail is reported, when
// it has changed: `dtkctl service logs --follow` shows it while the step
// runs, instead of only when it ends.
var progressEvery = 2 * time.Second

// reportProgress reports, every progressEvery while a step runs, a running
// report carrying the end of its log (the runner's log in the data dir,
// already redacted of sensitive values) when it has grown. The returned
// function stops it; it returns once no more report will be queued.
func (a *Agent) reportProgress(running plan.Report, logPath string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		var last string
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			tail, _, err := tailFile(logPath, actions.TailBytes)
			if err != nil || tail == last || tail == "" {
				continue
			}
			last = tail
			r := running
			r.Output = tail
			a.enqueueRunning(r)
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
