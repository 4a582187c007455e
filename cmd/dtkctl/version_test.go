package main

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
)

// With no coordinator reachable, version prints the client's version and a
// note, and succeeds.
func TestVersion_NoCoordinator_ClientVersionAndNote(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1", "https://127.0.0.1:1"} { // refused; https without a CA
		r := runCLI(t, addr, "version")
		r.check(t, exitOK)
		if r.stdout != "dtkctl dev ("+runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH+")\n" {
			t.Errorf("%s: stdout %q", addr, r.stdout)
		}
		if !strings.HasPrefix(r.stderr, "note: ") {
			t.Errorf("%s: stderr %q", addr, r.stderr)
		}
		r = runCLI(t, addr, "version", "--json")
		r.check(t, exitOK)
		var v versionInfo
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Client.Version != "dev" || v.Coordinators == nil || v.Note == "" {
			t.Errorf("%s: json %v %+v:\n%s", addr, err, v, r.stdout)
		}
	}
}

// version lists every coordinator with its version: the one asked (from
// /v1/status) and the others from the gossip pool; agents are left out.
func TestVersion_Coordinators(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.StatusResponse{Name: "c1", Version: "v1.2.0", Leader: "c2"})
	})
	f.handle("GET /v1/operator/members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.Member{
			{Name: "c1", Role: "coordinator", Status: "alive", HTTPAddr: "10.0.0.1:7070", Version: "v1.2.0"},
			{Name: "c2", Role: "coordinator", Status: "alive", HTTPAddr: "10.0.0.2:7070", Version: "v1.1.0"},
			{Name: "c3", Role: "coordinator", Status: "failed", HTTPAddr: "10.0.0.3:7070", Version: "v1.1.0"},
			{Name: "web-1", Role: "agent", Status: "alive", Version: "v1.0.0"},
		})
	})
	r := runCLI(t, f.addr(), "version")
	r.check(t, exitOK)
	for _, want := range []string{
		"COORDINATOR  ADDRESS", "c1           http://" + f.addr(), "v1.2.0   alive\n",
		"c2           10.0.0.2:7070", "v1.1.0   leader\n", "c3           10.0.0.3:7070", "v1.1.0   failed\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "web-1") || r.stderr != "" {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	r = runCLI(t, f.addr(), "version", "--json")
	r.check(t, exitOK)
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || len(v.Coordinators) != 3 || !v.Coordinators[0].Current ||
		!v.Coordinators[1].Leader || v.Coordinators[1].Version != "v1.1.0" {
		t.Errorf("json %v %+v", err, v)
	}
}
