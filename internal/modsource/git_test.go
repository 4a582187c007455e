package modsource

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/modsource/ocitest"
)

// gitRepo is a repository made with the git binary in a temporary folder.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatal("git is not installed: apt-get install git (DTK_REQUIRE_TOOLS is set, so this test may not skip)")
		}
		t.Skip("git is not installed: apt-get install git")
	}
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "repo")}
	r.git("init", "-q", "-b", "main", r.dir)
	return r
}

// git runs git in the repository and returns its trimmed output.
func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	if args[0] != "init" {
		cmd.Dir = r.dir
	}
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (as writeTree) and commits everything.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	writeTree(r.t, r.dir, files)
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// A repository with the module in modules/web: v1.0.0 (a lightweight
// tag), then v2.0.0 (annotated) changing a file and adding one, then a
// commit on main past both tags.
func twoVersions(t *testing.T) (r *gitRepo, c1, c2, c3 string) {
	r = newGitRepo(t)
	c1 = r.commit("v1", map[string]string{
		"README.md":                   "repo root\n",
		"modules/web/module.hcl":      "module \"web\" {\n  version = \"1.0.0\"\n}\n",
		"modules/web/dtk.sig":         "sig\x00\xff\r\nv1\n",
		"modules/web/bin/start.sh*":   "#!/bin/sh\n",
		"modules/other/module.hcl":    "module \"other\" {}\n",
		"modules/web/files/empty.txt": "",
	})
	r.git("tag", "v1.0.0")
	c2 = r.commit("v2", map[string]string{
		"modules/web/module.hcl": "module \"web\" {\n  version = \"2.0.0\"\n}\n",
		"modules/web/dtk.sig":    "sig\x00\xff\r\nv2\n",
		"modules/web/new.txt":    "new in v2\n",
	})
	r.git("tag", "-a", "-m", "release 2", "v2.0.0")
	c3 = r.commit("later", map[string]string{"modules/web/later.txt": "after v2\n"})
	return r, c1, c2, c3
}

// checkout clones r at the module folder path and ref.
func (r *gitRepo) fetch(t *testing.T, src string) (*GitCheckout, error) {
	t.Helper()
	g, err := ParseGit(src)
	if err != nil {
		t.Fatal(err)
	}
	return FetchGit(ctxT(t), g, filepath.Join(t.TempDir(), "clone"))
}

// A tag, an annotated tag, a branch, the default branch and commits by
// full and abbreviated hash each check out the module folder as it was
// there, byte for byte (dtk.sig and the executable bit included).
func TestFetchGit_Refs(t *testing.T) {
	r, c1, c2, c3 := twoVersions(t)
	// The folder as it was at each commit, from git's own checkout.
	want := map[string]map[string]string{}
	for _, c := range []string{c1, c2, c3} {
		wt := filepath.Join(t.TempDir(), "wt")
		r.git("worktree", "add", "-q", "--detach", wt, c)
		want[c] = ocitest.TreeDigests(t, filepath.Join(wt, "modules", "web"))
	}
	for _, tc := range []struct {
		src, commit, refName string
	}{
		{"git::" + r.dir + "//modules/web?ref=v1.0.0", c1, "refs/tags/v1.0.0"},
		{"git::file://" + r.dir + "//modules/web?ref=v2.0.0", c2, "refs/tags/v2.0.0"},
		{"git::" + r.dir + "//modules/web?ref=refs/tags/v2.0.0", c2, "refs/tags/v2.0.0"},
		{"git::" + r.dir + "//modules/web?ref=main", c3, "refs/heads/main"},
		{"git::" + r.dir + "//modules/web", c3, "refs/heads/main"},
		{"git::" + r.dir + "//modules/web?ref=" + c1, c1, ""},
		{"git::" + r.dir + "//modules/web?ref=" + c2[:10], c2, ""},
	} {
		co, err := r.fetch(t, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if co.Commit != tc.commit || co.RefName != tc.refName {
			t.Errorf("%s: commit %s (%s), want %s (%s)", tc.src, co.Commit, co.RefName, tc.commit, tc.refName)
		}
		if filepath.Base(co.Dir) != "web" {
			t.Errorf("%s: module folder %s", tc.src, co.Dir)
		}
		sameTree(t, want[tc.commit], ocitest.TreeDigests(t, co.Dir))
	}
}

// A tag is fetched one commit deep, and so is a commit by its full hash
// where the server allows it (uploadpack.allowReachableSHA1InWant).
func TestFetchGit_Shallow(t *testing.T) {
	r, c1, _, _ := twoVersions(t)
	r.git("config", "uploadpack.allowReachableSHA1InWant", "true")
	for _, ref := range []string{"v2.0.0", c1} {
		g, _ := ParseGit("git::" + r.dir + "//modules/web?ref=" + ref)
		dir := filepath.Join(t.TempDir(), "clone")
		co, err := FetchGit(ctxT(t), g, dir)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		shallow, err := os.ReadFile(filepath.Join(dir, ".git", "shallow"))
		if err != nil || strings.TrimSpace(string(shallow)) != co.Commit {
			t.Errorf("%s: .git/shallow = %q, %v; want the one commit %s", ref, shallow, err, co.Commit)
		}
	}
}

func TestFetchGit_Refusals(t *testing.T) {
	r, _, _, _ := twoVersions(t)
	// A link out of the repository (go-git rewrites an absolute link's
	// target into the clone, a relative one it keeps).
	if err := os.Symlink(strings.Repeat("../", 16)+"etc", filepath.Join(r.dir, "modules", "escape")); err != nil {
		t.Fatal(err)
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "a link out")
	r.git("tag", "v3.0.0")
	for _, tc := range []struct {
		src  string
		want error
		msg  string
	}{
		{"git::" + r.dir + "//modules/web?ref=v9.9.9", ErrNotFound, "tags: v1.0.0, v2.0.0, v3.0.0; branches: main"},
		{"git::" + r.dir + "//modules/web?ref=0000000000000000000000000000000000000000", ErrNotFound, "no commit"},
		{"git::" + r.dir + "//modules/web?ref=deadbeef", ErrNotFound, "no commit"},
		{"git::" + r.dir + "//modules/nothing?ref=v1.0.0", ErrNotFound, `no folder "modules/nothing"`},
		{"git::" + r.dir + "//README.md?ref=v1.0.0", ErrNotFound, "is a file"},
		{"git::" + r.dir + "//modules/escape?ref=v3.0.0", ErrUnsafe, "symbolic link"},
		{"git::" + filepath.Join(t.TempDir(), "none") + "//web?ref=v1", ErrNotFound, "no git repository"},
	} {
		_, err := r.fetch(t, tc.src)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.src, err, tc.want, tc.msg)
		}
	}
}
