package agent

import (
	"context"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/lazyre"
	"github.com/dtkhq/dtk/plan"
)

// An agent that starts, polls and converges a plain step compiles none of
// the regular expressions that the DSL, the configuration and the action
// runners keep for the inputs they check (internal/lazyre): they are a
// coordinator's work, or an action kind's this agent does not run, and
// compiling them at start would keep them in every idle agent's heap.
func TestAgent_Start_CompilesNoRegexp(t *testing.T) {
	before := lazyre.Compiled()
	f, srv := newFake(t, testModuleDir(t))
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Client: api.NewClient(srv.URL), PollWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	defer a.Shutdown()
	f.publish(f.step("one", "a", 1))
	waitFor(t, "the step reported", func() bool { return len(f.final("s/n/one/create")) == 1 })
	if r := f.final("s/n/one/create")[0]; r.State != plan.StepOK {
		t.Fatalf("report: %+v", r)
	}
	if n := lazyre.Compiled() - before; n != 0 {
		t.Fatalf("starting and converging compiled %d regular expressions", n)
	}
}
