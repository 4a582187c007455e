package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// A blocking query on the event stream answers when an event arrives, with
// that event, and a query from the index it answered waits for the next.
func TestHTTP_Events_BlockingQueryWakesOnNewEvent(t *testing.T) {
	s := startServer(t)
	c := api.NewClient(s.HTTPAddr())
	ctx := context.Background()
	// The new leader's own event first (it is recorded just after the
	// election).
	var first *api.EventList
	waitCond(t, "the leader change recorded", func() bool {
		var err error
		first, err = c.Events(ctx, 0, 0)
		return err == nil && len(first.Events) == 1 && first.Events[0].Type == api.EventLeaderChanged
	})
	type answer struct {
		l   *api.EventList
		err error
	}
	got := make(chan answer, 1)
	go func() {
		l, err := c.Events(ctx, first.Index, 30*time.Second)
		got <- answer{l, err}
	}()
	// Wait until the query is parked on the stream, then make an event.
	waitCond(t, "the query waiting", func() bool { return s.State().watch.size() > 0 })
	select {
	case a := <-got:
		t.Fatalf("answered before any event: %+v %v", a.l, a.err)
	default:
	}
	if err := c.RegisterNode(ctx, &plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.l.Events) != 1 || a.l.Events[0].Type != api.EventNodeUp || a.l.Events[0].Node != "n1" ||
			a.l.Index != a.l.Events[0].Index || a.l.Index <= first.Index || a.l.Events[0].TimeMS == 0 {
			t.Fatalf("answer: %+v", a.l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking query did not wake on the event")
	}
	// With a short wait and nothing new: an empty answer at the same index.
	l, err := c.Events(ctx, first.Index+1, 20*time.Millisecond)
	if err != nil || len(l.Events) != 0 || l.Index != first.Index+1 {
		t.Fatalf("nothing new: %+v %v", l, err)
	}
	if _, err := c.ServiceHistory(ctx, "nope"); code(err) != 404 {
		t.Fatalf("history of no service: %v", err)
	}
}

// Each caller sees the events of what it may read: services by service
// read, nodes by node read, leader changes by operator read; a blocking
// query passes over the events its caller may not see. History needs
// service read and names who deployed.
func TestACL_EventsAndHistory_FilteredByWhatTheCallerMayRead(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServerWith(t, p, func(c *Config) { c.ACLEnabled = true })
	ctx := context.Background()
	boot, err := aclClient(p, s, "").ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	token := func(name, rules string) *api.Client {
		t.Helper()
		if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: name, Rules: rules}); err != nil {
			t.Fatal(err)
		}
		tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{name}, Description: name})
		if err != nil {
			t.Fatal(err)
		}
		return aclClient(p, s, tk.SecretID)
	}
	app := token("app", `service "app-" { policy = "read" }`)
	viewer := token("viewer", `service "" { policy = "read" }
operator { policy = "read" }`)
	nodes := token("nodes", `node { policy = "read" }`)

	if code, msg := send(t, p.client(tlsutil.RoleNode, "n1"), "PUT", "https://"+s.HTTPAddr()+"/v1/nodes/n1", `{"name":"n1","labels":{"role":"x"}}`); code != 200 {
		t.Fatalf("register n1: %d %s", code, msg)
	}
	tgz, err := archive.Pack(writeTestModule(t, "mod"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgmt.PushModule(ctx, tgz, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"env-a", "app-b"} {
		if _, err := mgmt.Stage(ctx, api.StageRequest{Name: name, Template: "mod/t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := mgmt.Deploy(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	waitCond(t, "the leader change recorded", func() bool {
		l, err := mgmt.Events(ctx, 0, 0)
		return err == nil && strings.Contains(eventTypes(l.Events), api.EventLeaderChanged)
	})
	seen := func(c *api.Client) string {
		t.Helper()
		l, err := c.Events(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range l.Events {
			out = append(out, e.Type+":"+e.Service+e.Node+e.Coordinator)
		}
		return strings.Join(out, " ")
	}
	for who, c := range map[string]struct {
		client *api.Client
		want   string
	}{
		"mgmt":   {mgmt, "node-up:n1 deploy-started:env-a deploy-started:app-b"},
		"app":    {app, "deploy-started:app-b"},
		"viewer": {viewer, "deploy-started:env-a deploy-started:app-b"},
		"nodes":  {nodes, "node-up:n1"},
	} {
		got := seen(c.client)
		// The leader change comes first (or after n1, by timing) for those
		// with operator read; take it out and compare the rest.
		leader := strings.Contains(got, "leader-changed:c1")
		got = strings.Join(strings.Fields(strings.ReplaceAll(got, "leader-changed:c1", "")), " ")
		if got != c.want || leader != (who == "mgmt" || who == "viewer") {
			t.Errorf("%s sees %q (leader change: %v), want %q", who, got, leader, c.want)
		}
	}
	// app's blocking query passes over env-a's deploy and answers with
	// app-b's.
	l, _ := app.Events(ctx, 0, 0)
	got := make(chan *api.EventList, 1)
	go func() {
		l, err := app.Events(ctx, l.Index, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitCond(t, "the query waiting", func() bool { return s.State().watch.size() > 0 })
	if _, err := mgmt.Deploy(ctx, "env-a"); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		t.Fatalf("app woken by an event it may not see: %+v", l)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := mgmt.Deploy(ctx, "app-b"); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l == nil || len(l.Events) != 1 || l.Events[0].Service != "app-b" || l.Events[0].Generation != 2 {
			t.Fatalf("app's answer: %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("app's blocking query did not wake")
	}
	// History: service read, and who did it.
	recs, err := app.ServiceHistory(ctx, "app-b")
	if err != nil || len(recs) != 2 || recs[0].By != "client/ops" || recs[0].Token == "" || recs[0].Generation != 2 || recs[0].Kind != api.HistoryDeploy {
		t.Fatalf("app-b's history: %+v %v", recs, err)
	}
	if _, err := app.ServiceHistory(ctx, "env-a"); code(err) != 403 {
		t.Fatalf("app reading env-a's history: %v", err)
	}
}
