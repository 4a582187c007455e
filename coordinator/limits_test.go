package coordinator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/plan"
)

// startLimited runs a single-node coordinator with the given limits.
func startLimited(t *testing.T, lim limits.Limits) *Server {
	t.Helper()
	return startServerWith(t, func(c *Config) { c.Limits = lim })
}

// tgz is a module archive: main.hcl with src and, when extra > 0, a file
// of that many zeros.
func tgz(t *testing.T, src string, extra int) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "main.hcl", Mode: 0o644, Size: int64(len(src)), Typeflag: tar.TypeReg})
	tw.Write([]byte(src))
	if extra > 0 {
		tw.WriteHeader(&tar.Header{Name: "assets/zero.bin", Mode: 0o644, Size: int64(extra), Typeflag: tar.TypeReg})
		tw.Write(make([]byte, extra))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

const moduleSrc = "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n"

// Every bound refuses with a 4xx naming its key and how to raise it.
func TestHTTP_Limits_RefusalsNameTheSetting(t *testing.T) {
	lim := limits.Default()
	lim.ModulePackedBytes = 64 << 10
	lim.ModuleUnpackedBytes = 256 << 10
	lim.ModuleFiles = 3
	lim.JSONBodyBytes = 64 << 10
	lim.LabelValueBytes = 100
	lim.ReportBodyBytes = 64 << 10
	s := startLimited(t, lim)
	base := "http://" + s.HTTPAddr()
	post := func(method, path, ctype string, body []byte, chunked bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if chunked {
			// No declared length: the bound stops the reading.
			req.ContentLength = -1
			req.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(body)})
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var e api.APIError
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s %s: %d, not a JSON error: %v", method, path, resp.StatusCode, err)
		}
		if e.Code != resp.StatusCode {
			t.Errorf("JSON code %d, status %d", e.Code, resp.StatusCode)
		}
		return resp.StatusCode, e.Message
	}
	random := make([]byte, 100<<10)
	for i := range random {
		random[i] = byte(i*7919 + i>>8)
	}
	for _, c := range []struct {
		name, method, path, ctype string
		body                      []byte
		chunked                   bool
		code                      int
		want                      string
	}{
		{"packed, declared", "POST", "/v1/modules", "application/gzip", append(tgz(t, moduleSrc, 0), random...), false, 413,
			"module archive is larger than 64 KiB (limits.module_packed_bytes); raise it in the coordinator config"},
		{"packed, chunked", "POST", "/v1/modules", "application/gzip", append(tgz(t, moduleSrc, 0), random...), true, 413,
			"module archive is larger than 64 KiB (limits.module_packed_bytes); raise it in the coordinator config"},
		{"unpacked", "POST", "/v1/modules", "application/gzip", tgz(t, moduleSrc, 1<<20), false, 413,
			"module unpacks to more than 256 KiB (limits.module_unpacked_bytes); raise it in the coordinator config"},
		{"nesting", "POST", "/v1/modules", "application/gzip", tgz(t, moduleSrc+"x = "+strings.Repeat("upper(", 1000)+"\n", 0), false, 400,
			"expressions nest deeper than 64 levels (limits.nesting_depth)"},
		{"JSON body", "POST", "/v1/services", "application/json", []byte(`{"name": "` + strings.Repeat("a", 70<<10) + `"}`), false, 413,
			"request body is larger than 64 KiB (limits.json_body_bytes); raise it in the coordinator config"},
		{"JSON body, chunked", "POST", "/v1/services", "application/json", []byte(`{"name": "` + strings.Repeat("a", 70<<10) + `"}`), true, 413,
			"request body is larger than 64 KiB (limits.json_body_bytes); raise it in the coordinator config"},
		{"report batch", "POST", "/v1/nodes/n1/reports", "application/json", []byte(`{"reports": [{"node": "n1", "output": "` + strings.Repeat("o", 70<<10) + `"}]}`), false, 413,
			"report batch is larger than 64 KiB (limits.report_body_bytes); raise it in the coordinator config"},
		{"label", "PUT", "/v1/nodes/n1", "application/json", []byte(`{"name": "n1", "labels": {"k": "` + strings.Repeat("v", 101) + `"}}`), false, 400,
			`label "k": the value is 101 bytes, longer than 100 (limits.label_value_bytes); raise it in the coordinator config`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, msg := post(c.method, c.path, c.ctype, c.body, c.chunked)
			if code != c.code || !strings.Contains(msg, c.want) {
				t.Errorf("got %d %q\nwant %d containing %q", code, msg, c.code, c.want)
			}
		})
	}
	// Still serving, and a module within the bounds goes through.
	if _, err := api.NewClient(s.HTTPAddr()).PushModule(context.Background(), tgz(t, moduleSrc, 100<<10), ""); err != nil {
		t.Fatalf("a module within the limits: %v", err)
	}
}

func TestServer_CutReports_KeepsTailWithMarker(t *testing.T) {
	s := &Server{cfg: Config{Limits: limits.Default()}}
	s.cfg.Limits.ReportOutputBytes = 256
	long := strings.Repeat("é", 1000) + "THE END"
	reps := []plan.Report{{Output: long, Error: "START" + long}, {Output: "short", Error: "short"}}
	s.cutReports(reps)
	out, errText := reps[0].Output, reps[0].Error
	if len(out) > 256 || !strings.HasSuffix(out, "THE END") || !strings.HasPrefix(out, "[… ") || !strings.Contains(out, "(limits.report_output_bytes)") || !utf8.ValidString(out) {
		t.Errorf("output cut to %d bytes: %q", len(out), out)
	}
	if len(errText) > 256 || !strings.HasPrefix(errText, "START") || !strings.HasSuffix(errText, "(limits.report_output_bytes) …]") || !utf8.ValidString(errText) {
		t.Errorf("error cut to %d bytes: %q", len(errText), errText)
	}
	if reps[1].Output != "short" || reps[1].Error != "short" {
		t.Errorf("short report changed: %+v", reps[1])
	}
}

// The bound on a node's operator labels travels in the command, so that
// every coordinator applies the one of the coordinator that took it; old
// entries without one keep the former 64.
func TestFSM_NodeLabels_BoundTravelsInTheCommand(t *testing.T) {
	h := newHarness(t)
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1"}, Time: 1})
	three := map[string]string{"a": "1", "b": "2", "c": "3"}
	err, _ := h.apply(NodeLabelsType, NodeLabelsCmd{Name: "n1", Labels: three, MaxLabels: 2}).(error)
	if err == nil || !strings.Contains(err.Error(), `node "n1" would have 3 operator labels, more than 2 (limits.labels); raise it in the coordinator config`) {
		t.Fatalf("over the bound: %v", err)
	}
	h.mustApply(NodeLabelsType, NodeLabelsCmd{Name: "n1", Labels: three, MaxLabels: 3})
	many := map[string]string{}
	for i := range 62 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	if err, _ := h.apply(NodeLabelsType, NodeLabelsCmd{Name: "n1", Labels: many}).(error); err == nil || !strings.Contains(err.Error(), "more than 64") {
		t.Fatalf("an entry without a bound: %v, want the former 64", err)
	}
}
