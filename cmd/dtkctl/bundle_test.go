package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/api"
)

// realCoord runs a single-node coordinator (real Raft, real HTTP) on a
// kernel-chosen loopback port.
func realCoord(t *testing.T) string {
	t.Helper()
	s, err := coordinator.New(coordinator.Config{Name: "c1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s.HTTPAddr()
}

// moduleDir writes a small valid module with an asset standing in for a
// container image tarball.
func moduleDir(t *testing.T, name, version, asset string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"main.hcl": fmt.Sprintf("module {\n  name    = %q\n  version = %q\n}\n\n"+
			"component \"note\" {\n  attribute \"text\" { type = string }\n  create { script = \"note.sh\" }\n}\n\n"+
			"template \"site\" {\n  node \"a\" {\n    labels = { role = \"web\" }\n    component \"note\" \"n\" { text = \"hi\" }\n  }\n}\n", name, version),
		"note.sh":          "#!/bin/sh\necho hi\n",
		"images/image.tar": asset,
	}
	for n, c := range files {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// noise is n incompressible bytes.
func noise(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

func moduleRefs(t *testing.T, addr string) map[string]string {
	t.Helper()
	mods, err := api.NewClient(addr).Modules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range mods {
		out[m.Ref()] = m.Digest
	}
	return out
}

// The whole CLI flow between two real coordinators: export by name, by
// NAME@VERSION and everything; import; re-import; inspect.
func TestBundle_ExportImport_CLI(t *testing.T) {
	src, dst := realCoord(t), realCoord(t)
	runCLI(t, src, "module", "push", moduleDir(t, "web", "1.0.0", strings.Repeat("layer ", 100000))).check(t, exitOK)
	runCLI(t, src, "module", "push", moduleDir(t, "web", "1.1.0", "other layer")).check(t, exitOK)
	runCLI(t, src, "module", "push", moduleDir(t, "db", "2.0.0", "db layer")).check(t, exitOK)
	dir := t.TempDir()
	file := filepath.Join(dir, "web.dtkbundle")

	r := runCLI(t, src, "bundle", "export", file, "web")
	r.check(t, exitOK)
	for _, want := range []string{"exported web@1.0.0 (", "exported web@1.1.0 (", "wrote " + file + ": 2 modules", "sha256 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("export output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "db@") {
		t.Errorf("export of web took db:\n%s", r.stdout)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("export left %d files in the folder, want 1", len(ents))
	}

	r = runCLI(t, "127.0.0.1:1", "bundle", "inspect", file) // no cluster needed
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, "1.1.0") || !strings.Contains(r.stdout, "ok: 2 modules, every digest checked") {
		t.Errorf("inspect:\n%s", r.stdout)
	}

	r = runCLI(t, dst, "bundle", "import", file)
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "imported web@1.0.0") || !strings.Contains(r.stdout, "imported web@1.1.0") ||
		!strings.Contains(r.stdout, "2 imported, 0 already present") {
		t.Errorf("import output:\n%s", r.stdout)
	}
	srcRefs, dstRefs := moduleRefs(t, src), moduleRefs(t, dst)
	for _, ref := range []string{"web@1.0.0", "web@1.1.0"} {
		if dstRefs[ref] == "" || dstRefs[ref] != srcRefs[ref] {
			t.Errorf("%s: digest %q on the target, %q on the source", ref, dstRefs[ref], srcRefs[ref])
		}
	}

	r = runCLI(t, dst, "bundle", "import", file)
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "already present web@1.0.0") || !strings.Contains(r.stdout, "0 imported, 2 already present") {
		t.Errorf("re-import output:\n%s", r.stdout)
	}

	// Everything, and one version: the target gets db and keeps the rest.
	all := filepath.Join(dir, "all.dtkbundle")
	runCLI(t, src, "bundle", "export", all).check(t, exitOK)
	r = runCLI(t, dst, "bundle", "import", all)
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "imported db@2.0.0") || !strings.Contains(r.stdout, "1 imported, 2 already present") {
		t.Errorf("import of everything:\n%s", r.stdout)
	}
	one := filepath.Join(dir, "one.dtkbundle")
	r = runCLI(t, src, "bundle", "export", one, "web@1.1.0")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "1 module,") || strings.Contains(r.stdout, "web@1.0.0") {
		t.Errorf("export web@1.1.0:\n%s", r.stdout)
	}
}

// A bad bundle is refused before anything is sent (exit 2, the reason
// named); a conflict refuses the whole import; export errors leave no file.
func TestBundle_Refusals_CLI(t *testing.T) {
	src := realCoord(t)
	runCLI(t, src, "module", "push", moduleDir(t, "a", "1.0.0", noise(300000))).check(t, exitOK)
	runCLI(t, src, "module", "push", moduleDir(t, "b", "1.0.0", "b from the source")).check(t, exitOK)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.dtkbundle")
	runCLI(t, src, "bundle", "export", good, "a", "b").check(t, exitOK)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	f := newFake(t) // any request fails the test: a bad file is refused locally
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	// Module a's asset is incompressible and most of the file: the
	// middle byte is in its blob.
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 0x01
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"tampered", tampered, "(a@1.0.0): content has digest sha256:"},
		{"truncated", data[:len(data)-100], "truncated"},
		{"empty", nil, "truncated"},
		{"text", []byte("hello"), "not a dtk module bundle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, f.addr(), "bundle", "import", write(c.name, c.data))
			r.check(t, exitUsage)
			if !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "nothing was imported") {
				t.Errorf("stderr:\n%s", r.stderr)
			}
		})
	}
	r := runCLI(t, f.addr(), "bundle", "import", filepath.Join(dir, "missing"))
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing file: %s", r.stderr)
	}

	// Conflict: b@1.0.0 exists on the target with other content.
	dst := realCoord(t)
	runCLI(t, dst, "module", "push", moduleDir(t, "b", "1.0.0", "b from the target")).check(t, exitOK)
	r = runCLI(t, dst, "bundle", "import", good)
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "b@1.0.0 is already pushed with other content") || !strings.Contains(r.stderr, "nothing was imported") {
		t.Errorf("conflict: %s", r.stderr)
	}
	if refs := moduleRefs(t, dst); len(refs) != 1 {
		t.Errorf("a refused import recorded modules: %v", refs)
	}

	// Export errors: an unknown module, an unknown version; the existing
	// file is kept and no temporary file is left.
	before, _ := os.ReadFile(good)
	for _, args := range [][]string{{"nope"}, {"a@9.9.9"}, {"@1.0.0"}} {
		r := runCLI(t, src, append([]string{"bundle", "export", good}, args...)...)
		r.check(t, exitUsage)
		if !strings.Contains(r.stderr, "error: ") {
			t.Errorf("export %v: %s", args, r.stderr)
		}
	}
	if !strings.Contains(runCLI(t, src, "bundle", "export", good, "a@9.9.9").stderr, "versions here: 1.0.0") {
		t.Error("unknown version: the versions there are not named")
	}
	// A coordinator that serves a damaged blob: export fails, nothing written.
	bad := newFake(t)
	bad.handle("GET /v1/modules", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{{"name": "a", "version": "1.0.0", "size": 5,
			"digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}})
	})
	bad.handle("GET /v1/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	r = runCLI(t, bad.addr(), "bundle", "export", good)
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "damaged") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("damaged blob on export: %s", r.stderr)
	}
	after, _ := os.ReadFile(good)
	if !bytes.Equal(before, after) {
		t.Error("a failed export changed the existing file")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
