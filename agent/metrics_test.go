package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	return string(b)
}

// With metrics on, step runs are counted by kind and result, converges
// timed, the last good poll and the outbox shown.
func TestAgent_Metrics_StepRunsConvergesPollOutbox(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	m := NewMetrics()
	ms, err := ServeMetrics(m, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close(context.Background()) })
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Client: api.NewClient(srv.URL), PollWait: time.Second, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	defer a.Shutdown()
	f.publish(f.step("one", "a", 1), f.step("two", "b", 1))
	waitFor(t, "both steps reported", func() bool { return len(f.final("s/n/two/create")) == 1 })
	f.publish(f.step("one", "a", 1), f.step("two", "fail", 2))
	waitFor(t, "the failure reported", func() bool { return len(f.final("s/n/two/create")) == 2 })
	var body string
	waitFor(t, "metrics", func() bool {
		body = scrape(t, ms.Addr())
		return strings.Contains(body, `dtk_agent_step_runs_total{kind="bash",result="failed"} 1`)
	})
	for _, want := range []string{
		`dtk_agent_step_runs_total{kind="bash",result="changed"} 2`,
		`dtk_agent_converge_duration_seconds_count{trigger="plan"}`,
		"dtk_agent_outbox_reports ",
		"dtk_agent_outbox_bytes ",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	if m := regexp.MustCompile(`(?m)^dtk_agent_last_poll_success_timestamp_seconds (\S+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("no last successful poll time: %v", m)
	}
}
