package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/pagedrop"
	"github.com/dtkhq/dtk/plan"
)

// An agent that dropped its binary's resident pages (here the test
// binary's, after 20 ms of quiet) keeps converging and reporting: the code
// faults back in. It drops after its first poll answer and again after
// each converge; with DropPages off it never drops.
func TestAgent_DropPages_ConvergesAndReportsAfterEachDrop(t *testing.T) {
	if !pagedrop.Supported() {
		t.Skip("page dropping is Linux only")
	}
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a, err := New(Config{Name: "n1", DataDir: data, Client: api.NewClient(srv.URL), PollWait: time.Second,
		DropPages: true, DropPagesAfter: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	defer a.Shutdown()
	waitFor(t, "the first drop", func() bool { return a.PageDrops() >= 1 })

	want := []string{}
	for gen, msg := range []string{"a", "b", "c"} {
		drops := a.PageDrops()
		time.Sleep(50 * time.Millisecond) // dropped, and quiet
		f.publish(f.step("one", msg, uint64(gen+1)))
		waitFor(t, "the step reported for generation "+msg, func() bool { return len(f.final("s/n/one/create")) == gen+1 })
		if r := f.final("s/n/one/create")[gen]; r.State != plan.StepOK || r.Generation != uint64(gen+1) {
			t.Fatalf("report after a drop: %+v", r)
		}
		want = append(want, "run_"+msg)
		if got := strings.Join(runs(t, data), ","); got != strings.Join(want, ",") {
			t.Fatalf("runs = %s, want %s", got, strings.Join(want, ","))
		}
		waitFor(t, "a drop after the converge", func() bool { return a.PageDrops() > drops })
	}
}

func TestAgent_DropPages_OffByDefault(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Client: api.NewClient(srv.URL), PollWait: time.Second,
		DropPagesAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	defer a.Shutdown()
	f.publish(f.step("one", "a", 1))
	waitFor(t, "the step reported", func() bool { return len(f.final("s/n/one/create")) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := a.PageDrops(); n != 0 {
		t.Fatalf("%d drops with DropPages off", n)
	}
}
