package coordinator

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
)

// A refused push leaves no blob behind: not in the store, not served.
func TestHTTP_RefusedPushLeavesNoBlob(t *testing.T) {
	s := startServer(t)
	c := api.NewClient(s.HTTPAddr())
	ctx := context.Background()
	module := func(version, extra string) []byte {
		t.Helper()
		dir := t.TempDir()
		src := "module {\n  name    = \"m\"\n  version = \"" + version + "\"\n}\n" + extra
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		tgz, err := archive.Pack(dir)
		if err != nil {
			t.Fatal(err)
		}
		return tgz
	}
	stored := func(digest string) bool {
		t.Helper()
		p, err := s.blobs.path(digest)
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(p)
		return err == nil
	}
	served := func(digest string) int {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/blobs/" + digest)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	good := module("1.0.0", "")
	if _, err := c.PushModule(ctx, good, ""); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		body []byte
		want string
	}{
		{"parse error", module("1.0.1", "component \"c\" {\n  bogus = 1\n}\n"), "main.hcl:6:"},
		{"nesting bomb", module("1.0.2", "x = "+strings.Repeat("(", 1000)+"\n"), "nest deeper than 64"},
		{"not an archive", []byte("plain text"), "not a gzip archive"},
		{"other content for a pushed version", module("1.0.0", "# changed\n"), "already pushed with other content"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			digest := archive.Digest(bad.body)
			_, err := c.PushModule(ctx, bad.body, "")
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Fatalf("push: %v, want an error with %q", err, bad.want)
			}
			if stored(digest) {
				t.Errorf("the refused archive %s is still in the blob store", digest)
			}
			if code := served(digest); code != http.StatusNotFound {
				t.Errorf("GET /v1/blobs/%s: %d, want 404", digest, code)
			}
		})
	}
	// The module that was recorded keeps its blob.
	if d := archive.Digest(good); !stored(d) || served(d) != http.StatusOK {
		t.Errorf("the recorded module's blob %s is gone", d)
	}
	// Pushing the recorded module again keeps its blob.
	if _, err := c.PushModule(ctx, good, ""); err != nil {
		t.Fatal(err)
	}
	if d := archive.Digest(good); !stored(d) {
		t.Errorf("pushing a recorded module again lost its blob %s", d)
	}
	// No upload is left half-written either.
	if left, _ := filepath.Glob(filepath.Join(s.blobs.dir, "upload-*")); len(left) != 0 {
		t.Errorf("uploads left behind: %v", left)
	}
}

// A push the ACLs refuse once the archive names its module takes its blob
// back, but not the blob of a module already recorded with the same bytes.
func TestACL_RefusedPushLeavesNoBlob(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServerWith(t, p, func(c *Config) { c.ACLEnabled = true })
	ctx := context.Background()
	boot, err := aclClient(p, s, "").ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: "app", Rules: `module "app" { policy = "write" }`}); err != nil {
		t.Fatal(err)
	}
	tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	app := aclClient(p, s, tk.SecretID)
	push := func(c *api.Client, name string) (string, error) {
		t.Helper()
		tgz, err := archive.Pack(writeTestModule(t, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PushModule(ctx, tgz, "")
		return archive.Digest(tgz), err
	}
	stored := func(digest string) bool {
		t.Helper()
		p, err := s.blobs.path(digest)
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(p)
		return err == nil
	}
	env, err := push(mgmt, "env")
	if err != nil {
		t.Fatal(err)
	}
	other, err := push(app, "other")
	if code(err) != 403 {
		t.Fatalf("app pushing other: %v, want 403", err)
	}
	if stored(other) {
		t.Errorf("the refused archive %s is still in the blob store", other)
	}
	if rc, err := mgmt.Blob(ctx, other); code(err) != 404 {
		if err == nil {
			rc.Close()
		}
		t.Errorf("GET /v1/blobs/%s: %v, want 404", other, err)
	}
	if d, err := push(app, "env"); code(err) != 403 || d != env {
		t.Fatalf("app pushing env: %v (%s), want 403 for %s", err, d, env)
	}
	if !stored(env) {
		t.Errorf("a refused push removed the blob %s of the recorded module env", env)
	}
}
