package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/bundle/bundletest"
	"github.com/dtkhq/dtk/plan"
)

// smallModule writes a valid module folder; extra is written as an asset
// (a stand-in for an image tarball).
func smallModule(t *testing.T, name, version, extra string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"main.hcl": fmt.Sprintf(`module {
  name    = %q
  version = %q
}

component "note" {
  attribute "text" { type = string }
  create { script = "note.sh" }
}

template "site" {
  node "a" {
    labels = { role = "web" }
    component "note" "n" { text = "hi" }
  }
}
`, name, version),
		"note.sh":         "#!/bin/sh\necho \"$DTK_ATTR_TEXT\"\n",
		"images/blob.tar": extra,
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

// exportFrom writes a bundle of the named refs from s, as dtkctl does.
func exportFrom(t *testing.T, s *Server, refs ...string) []byte {
	t.Helper()
	cl := api.NewClient(s.HTTPAddr())
	var m bundle.Manifest
	for _, ref := range refs {
		name, ver, _ := strings.Cut(ref, "@")
		mod := s.State().Module(name, ver)
		if mod == nil {
			t.Fatalf("no module %s", ref)
		}
		m.Modules = append(m.Modules, bundle.Entry{Name: mod.Name, Version: mod.Version, Digest: mod.Digest, Size: mod.Size})
	}
	var buf bytes.Buffer
	if _, err := bundle.Write(&buf, m, func(e bundle.Entry) (io.ReadCloser, error) {
		return cl.Blob(context.Background(), e.Digest)
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pushDir(t *testing.T, s *Server, dir string) *plan.Module {
	t.Helper()
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.NewClient(s.HTTPAddr()).PushModule(context.Background(), tgz, "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// storeFiles lists what is in a blob store folder besides sha256/.
func storeFiles(t *testing.T, s *Server) (blobs, other []string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.blobs.dir, "sha256"))
	for _, e := range ents {
		blobs = append(blobs, e.Name())
	}
	ents, _ = os.ReadDir(s.blobs.dir)
	for _, e := range ents {
		if e.Name() != "sha256" {
			other = append(other, e.Name())
		}
	}
	return blobs, other
}

func importErr(t *testing.T, s *Server, b []byte) *api.APIError {
	t.Helper()
	_, err := api.NewClient(s.HTTPAddr()).ImportBundle(context.Background(), bytes.NewReader(b))
	var ae *api.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("import: got %v, want an API error", err)
	}
	return ae
}

// Export from one cluster, import into another: same modules, same
// digests, same bytes; the imported module stages and compiles; a second
// import changes nothing.
func TestBundle_RoundTripAndIdempotentReimport(t *testing.T) {
	src, dst := startServer(t), startServer(t)
	ctx := context.Background()
	big := strings.Repeat("image layer bytes ", 200000) // 3.6 MB
	m1 := pushDir(t, src, smallModule(t, "web", "1.0.0", big))
	m2 := pushDir(t, src, smallModule(t, "web", "1.1.0", "v1.1"))
	pushDir(t, src, "../examples/hello")
	b := exportFrom(t, src, "web@1.0.0", "web@1.1.0", "hello@1.0.0")

	cl := api.NewClient(dst.HTTPAddr())
	resp, err := cl.ImportBundle(ctx, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Imported) != 3 || len(resp.Existing) != 0 {
		t.Fatalf("first import: %+v", resp)
	}
	for _, want := range []*plan.Module{m1, m2} {
		got := dst.State().Module(want.Name, want.Version)
		if got == nil || got.Digest != want.Digest || got.Size != want.Size || got.Templates["site"] == nil {
			t.Fatalf("imported %s: %+v", want.Ref(), got)
		}
		rc, err := cl.Blob(ctx, want.Digest)
		if err != nil {
			t.Fatal(err)
		}
		got2, _ := io.ReadAll(rc)
		rc.Close()
		if archive.Digest(got2) != want.Digest {
			t.Fatalf("blob %s differs after import", want.Digest)
		}
	}
	if err := cl.RegisterNode(ctx, nodeWith("w", "web")); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Stage(ctx, api.StageRequest{Name: "s", Template: "web@1.0.0/site"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Deploy(ctx, "s"); err != nil {
		t.Fatalf("deploy an imported module: %v", err)
	}

	// The re-import writes nothing but its audit entry.
	mods := func() string { b, _ := json.Marshal(dst.State().Modules()); return string(b) }
	before := mods()
	resp, err = cl.ImportBundle(ctx, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if len(resp.Imported) != 0 || len(resp.Existing) != 3 {
		t.Fatalf("re-import: %+v", resp)
	}
	if mods() != before {
		t.Fatalf("re-import changed the modules:\n%s\n%s", before, mods())
	}
	if _, other := storeFiles(t, dst); len(other) != 0 {
		t.Fatalf("scratch files left in the blob store: %v", other)
	}
}

// A damaged bundle is refused with a message naming what is wrong, and
// leaves no module and no blob behind.
func TestBundle_DamagedBundlesRefused(t *testing.T) {
	src, dst := startServer(t), startServer(t)
	pushDir(t, src, smallModule(t, "a", "1.0.0", strings.Repeat("x", 100000)))
	pushDir(t, src, smallModule(t, "b", "1.0.0", "b"))
	good := exportFrom(t, src, "a@1.0.0", "b@1.0.0")
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"tampered blob", func() []byte {
			// The outer gzip is stored: a module's bytes appear as they are.
			rc, _ := api.NewClient(src.HTTPAddr()).Blob(context.Background(), src.State().Module("b", "1.0.0").Digest)
			blob, _ := io.ReadAll(rc)
			rc.Close()
			b := bytes.Clone(good)
			i := bytes.Index(b, blob[len(blob)/2:len(blob)/2+16])
			if i < 0 {
				t.Fatal("blob not found in the bundle")
			}
			b[i] ^= 0x55
			return b
		}(), "the file was altered or damaged"},
		{"tampered padding", func() []byte {
			b := bytes.Clone(good)
			b[len(b)-40] ^= 0x55 // in the tar's end blocks
			return b
		}(), "damaged"},
		{"truncated", good[:len(good)*2/3], "truncated"},
		{"truncated after a blob", bundletest.Rewrite(t, good, func(n []string, _ map[string][]byte) []string { return n[:2] }), "is missing: the file is truncated"},
		{"missing manifest", bundletest.Rewrite(t, good, func(n []string, _ map[string][]byte) []string { return n[1:] }), "manifest is missing"},
		{"manifest names another module", bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
			d[bundle.ManifestName] = bytes.Replace(d[bundle.ManifestName], []byte(`"name": "b"`), []byte(`"name": "c"`), 1)
			return n
		}), "lists c@1.0.0 but its archive"},
		{"not a bundle", []byte("{}"), "not a dtk module bundle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ae := importErr(t, dst, c.data)
			if ae.Code != http.StatusBadRequest || !strings.Contains(ae.Message, c.want) || !strings.Contains(ae.Message, "nothing was imported") {
				t.Fatalf("got %d %q, want 400 containing %q", ae.Code, ae.Message, c.want)
			}
			if mods := dst.State().Modules(); len(mods) != 0 {
				t.Fatalf("modules recorded: %v", mods)
			}
			if blobs, other := storeFiles(t, dst); len(blobs)+len(other) != 0 {
				t.Fatalf("left in the blob store: %v %v", blobs, other)
			}
		})
	}
}

// One module of the bundle conflicts with what the cluster has: the whole
// import is refused, the other modules are not recorded.
func TestBundle_ConflictImportsNothing(t *testing.T) {
	src, dst := startServer(t), startServer(t)
	pushDir(t, src, smallModule(t, "a", "1.0.0", "a"))
	pushDir(t, src, smallModule(t, "b", "1.0.0", "b from src"))
	b := exportFrom(t, src, "a@1.0.0", "b@1.0.0")
	mine := pushDir(t, dst, smallModule(t, "b", "1.0.0", "b from dst"))
	// Not the Raft index: the audit trail and leader events commit their
	// own entries in the background.
	before, _ := json.Marshal(dst.State().Modules())

	ae := importErr(t, dst, b)
	if ae.Code != http.StatusConflict || !strings.Contains(ae.Message, "b@1.0.0 is already pushed with other content") ||
		!strings.Contains(ae.Message, "nothing was imported") {
		t.Fatalf("got %d %q", ae.Code, ae.Message)
	}
	if dst.State().Module("a", "1.0.0") != nil {
		t.Fatal("a@1.0.0 was recorded by a refused import")
	}
	if got := dst.State().Module("b", "1.0.0"); got.Digest != mine.Digest {
		t.Fatal("b@1.0.0 was replaced")
	}
	if after, _ := json.Marshal(dst.State().Modules()); string(after) != string(before) {
		t.Fatalf("a refused import changed the modules:\n%s\n%s", before, after)
	}
	if blobs, other := storeFiles(t, dst); len(blobs) != 1 || len(other) != 0 {
		t.Fatalf("a refused import left blobs or scratch files: %v %v", blobs, other)
	}
}

// The FSM command is all or nothing, also when the conflict appears only
// at apply time (a push that raced the import).
func TestFSM_PutModules_AllOrNothing(t *testing.T) {
	st := NewState()
	mod := func(name, digest string) plan.Module {
		return plan.Module{Name: name, Version: "1.0.0", Digest: digest}
	}
	st.putModule(1, &PutModuleCmd{Module: mod("b", "sha256:b1")})
	resp, _ := st.putModules(2, &PutModulesCmd{Modules: []plan.Module{mod("a", "sha256:a"), mod("b", "sha256:b2")}})
	if err, ok := resp.(error); !ok || !errors.Is(err, ErrConflict) {
		t.Fatalf("conflict: got %v", resp)
	}
	if st.data.Modules["a@1.0.0"] != nil {
		t.Fatal("a recorded by a refused command")
	}
	resp, _ = st.putModules(3, &PutModulesCmd{Modules: []plan.Module{mod("a", "sha256:a"), mod("a", "sha256:a2")}})
	if _, ok := resp.(error); !ok || st.data.Modules["a@1.0.0"] != nil {
		t.Fatalf("same ref twice with two contents: %v", resp)
	}
	resp, _ = st.putModules(4, &PutModulesCmd{Modules: []plan.Module{mod("a", "sha256:a"), mod("b", "sha256:b1")}})
	res, ok := resp.(*PutModulesResult)
	if !ok || len(res.Added) != 1 || res.Added[0] != "a@1.0.0" || len(res.Existing) != 1 || res.Existing[0] != "b@1.0.0" {
		t.Fatalf("got %#v", resp)
	}
}

// Through a follower of a three-coordinator cluster: the import is
// forwarded to the leader, every coordinator holds the blobs and the
// modules.
func TestCluster_BundleImportThroughFollower(t *testing.T) {
	src := startServer(t)
	pushDir(t, src, smallModule(t, "a", "1.0.0", strings.Repeat("y", 5<<20)))
	b := exportFrom(t, src, "a@1.0.0")
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.follower(l)
	resp, err := api.NewClient(f.HTTPAddr()).ImportBundle(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Imported) != 1 {
		t.Fatalf("%+v", resp)
	}
	digest := src.State().Module("a", "1.0.0").Digest
	// A quorum holds it when the import answers; the others fetch it in
	// the background.
	for _, s := range c.servers {
		waitCond(t, s.cfg.Name+" holds the blob", func() bool { return s.blobs.Has(digest) })
	}
	c.converge(c.servers...)
	for _, s := range c.servers {
		if s.State().Module("a", "1.0.0") == nil {
			t.Errorf("%s lacks the module", s.cfg.Name)
		}
	}
}
