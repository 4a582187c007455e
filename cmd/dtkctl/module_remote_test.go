package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/plan"
)

// Bad sources and flags are usage errors (exit 2) found before anything
// is fetched or published: the fake coordinator fails any request.
func TestModuleRemote_UsageErrors_Exit2(t *testing.T) {
	f := newFake(t)
	dir := writeModule(t, map[string]string{"main.hcl": okModule})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not used"), 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"module", "push", "oci://r.example/dtk/tiny"}, "names no tag"},
		{[]string{"module", "push", "oci://r.example/Dtk/tiny:0.1.0"}, "invalid repository"},
		{[]string{"module", "push", "oci://r.example"}, "oci://REGISTRY/REPOSITORY"},
		{[]string{"module", "push", "git::s3://bucket/x//tiny?ref=v1"}, "scheme s3://"},
		{[]string{"module", "push", "git::https://g.example/r.git//../x?ref=v1"}, "inside the repository"},
		{[]string{"module", "push", "git::https://g.example/r.git//tiny?branch=main"}, `unsupported parameter "branch"`},
		{[]string{"module", "push", "git::https://g.example/r.git//tiny?ref=v1", "--plain-http"}, "for oci:// sources only"},
		{[]string{"module", "push", dir, "--registry-ca", ca}, "for oci:// sources only"},
		{[]string{"module", "push", "oci://r.example/dtk/tiny:1", "--registry-password-stdin"}, "needs --registry-username"},
		{[]string{"module", "push", "oci://r.example/dtk/tiny:1", "--registry-username", "u"}, "needs --registry-password-stdin"},
		{[]string{"module", "push", "oci://r.example/dtk/tiny:1", "--registry-ca", filepath.Join(dir, "none.pem")}, "none.pem"},
		{[]string{"module", "publish", dir, "oci://r.example/dtk/tiny@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}, "not a digest"},
		{[]string{"module", "publish", dir, "git::https://g.example/r.git"}, "oci://REGISTRY/REPO[:TAG]"},
		{[]string{"module", "publish", filepath.Join(dir, "none"), "oci://r.example/dtk/tiny"}, "does not exist"},
		{[]string{"module", "publish", dir}, "expected \"<ref>\""},
	} {
		r := runCLI(t, f.addr(), tc.args...)
		r.check(t, exitUsage)
		if !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("dtkctl %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), tc.msg, r.stderr)
		}
	}
}

// publish checks the module offline first and the tag against its
// version, before any registry is contacted (none listens here).
func TestModulePublish_ChecksBeforeContactingTheRegistry(t *testing.T) {
	dir := writeModule(t, map[string]string{"main.hcl": okModule})
	r := runCLIEnv(t, noCoordinator, "module", "publish", dir, "oci://127.0.0.1:1/dtk/tiny:0.2.0")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "the tag 0.2.0 is not the version of tiny@0.1.0") ||
		!strings.Contains(r.stderr, "publish to oci://127.0.0.1:1/dtk/tiny:0.1.0, or add --allow-tag-mismatch") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	broken := writeModule(t, map[string]string{"main.hcl": "module {\n  name = \"tiny\"\n"})
	r = runCLIEnv(t, noCoordinator, "module", "publish", broken, "oci://127.0.0.1:1/dtk/tiny")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "is not a valid module") || !strings.Contains(r.stderr, "main.hcl:") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	plus := writeModule(t, map[string]string{"main.hcl": strings.Replace(okModule, `"0.1.0"`, `"0.1.0+build.7"`, 1)})
	r = runCLIEnv(t, noCoordinator, "module", "publish", plus, "oci://127.0.0.1:1/dtk/tiny")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, `version "0.1.0+build.7" is not a valid OCI tag`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// With the tag right, it gets as far as the registry, which is not
	// there: exit 1, and the plain-http warning was loud.
	r = runCLIEnv(t, noCoordinator, "module", "publish", dir, "oci://127.0.0.1:1/dtk/tiny", "--plain-http")
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "WARNING: --plain-http") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// module push git:: clones the repository, checks out the ref and pushes
// the folder there exactly as `module push DIR` would; it says which
// commit. A ref the repository lacks is exit 1.
func TestModulePush_Git(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := filepath.Join(t.TempDir(), "repo")
	mod := filepath.Join(repo, "modules", "tiny")
	gitRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(mod, 0o755)
	gitRun("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(mod, "main.hcl"), []byte(okModule), 0o644)
	os.WriteFile(filepath.Join(mod, "dtk.sig"), []byte("signature\x00\xff\n"), 0o644)
	gitRun("add", "-A")
	gitRun("commit", "-q", "-m", "one")
	gitRun("tag", "v0.1.0")
	commit := gitRun("rev-parse", "HEAD")
	want, err := archive.Pack(mod)
	if err != nil {
		t.Fatal(err)
	}

	f := newFake(t)
	var got []byte
	f.handle("POST /v1/modules", func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		writeJSON(w, 200, plan.Module{Name: "tiny", Version: "0.1.0", Digest: archive.Digest(got)})
	})
	src := "git::" + repo + "//modules/tiny?ref=v0.1.0"
	r := runCLI(t, f.addr(), "module", "push", src)
	r.check(t, exitOK)
	if !bytes.Equal(got, want) {
		t.Errorf("pushed archive %s, the folder packs to %s", archive.Digest(got), archive.Digest(want))
	}
	if !strings.HasPrefix(r.stdout, "checked out "+src+" at commit "+commit+" (refs/tags/v0.1.0)\npushed tiny@0.1.0 (") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	// --json: stdout is the module alone; the commit goes to stderr.
	r = runCLI(t, f.addr(), "module", "push", src, "--json")
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "{") || !strings.Contains(r.stderr, commit) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}

	got = nil
	r = runCLI(t, f.addr(), "module", "push", "git::"+repo+"//modules/tiny?ref=v9")
	r.check(t, exitFailed)
	if got != nil || !strings.Contains(r.stderr, `"v9" is not a tag, branch or commit there (tags: v0.1.0; branches: main)`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}
