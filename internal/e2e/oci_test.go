package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/modsource/ocitest"
)

// The addresses of this file's tests (127.0.0.135 and .139 are
// internal/modsource's registries).
const (
	ociRegistryIP = "127.0.0.136"
	ociCoordIP    = "127.0.0.137"
	ociAgentIP    = "127.0.0.138"
)

// sharedModule writes the module "shared" at version into dir: a script
// that records which version ran, a dtk.sig (a plain file here: the
// transports must carry it byte for byte whatever it holds) and a binary
// asset.
func sharedModule(t *testing.T, dir, version string) {
	t.Helper()
	files := map[string]string{
		"main.hcl": fmt.Sprintf(`module {
  name    = "shared"
  version = %q
}

component "note" {
  attribute "text" {
    type     = string
    required = true
  }
  create {
    script = "scripts/note.sh"
  }
}

template "site" {
  node "one" {
    labels = { zone = "oci" }
    component "note" "hello" {
      text = "hi"
    }
  }
}
`, version),
		"scripts/note.sh": "#!/bin/sh\nprintf '%s from " + version + "\\n' \"$text\" > \"$DTK_DATA_DIR/shared-note.txt\"\n",
		"dtk.sig":         "untrusted comment: signature of shared@" + version + "\n\x00\x01\x02\xfe\xff\r\n",
		"files/blob.bin":  string(bytes.Repeat([]byte{0, 0xff, 0x7f, '\n'}, 4096)) + version,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// ctlIO runs dtkctl against addr with extra environment and standard
// input; it returns stdout, stderr and the exit code.
func ctlIO(t *testing.T, addr string, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.ctl, append(ctlTLSArgs(addr), args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dtkctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func mustCtlIO(t *testing.T, addr string, env []string, stdin string, args ...string) (string, string) {
	t.Helper()
	out, errOut, code := ctlIO(t, addr, env, stdin, args...)
	if code != 0 {
		t.Fatalf("dtkctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// pushedDigests is NAME@VERSION → digest of the coordinator's modules.
func pushedDigests(t *testing.T, addr string) map[string]string {
	t.Helper()
	var mods []struct{ Name, Version, Digest string }
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "module", "list", "--json")), &mods); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range mods {
		out[m.Name+"@"+m.Version] = m.Digest
	}
	return out
}

// coordinatorFiles unpacks the archive the coordinator keeps under digest
// and returns its files' digests.
func coordinatorFiles(t *testing.T, addr, digest string) map[string]string {
	t.Helper()
	resp, err := opClient.Get("https://" + addr + "/v1/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/blobs/%s: %s", digest, resp.Status)
	}
	dir := filepath.Join(t.TempDir(), "blob")
	if err := archive.Unpack(resp.Body, dir); err != nil {
		t.Fatal(err)
	}
	return ocitest.TreeDigests(t, dir)
}

func sameFiles(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d files, want %d:\n%v\n%v", what, len(got), len(want), got, want)
	}
	for name, d := range want {
		if got[name] != d {
			t.Errorf("%s: %s is %q, want %q", what, name, got[name], d)
		}
	}
	if _, ok := got["dtk.sig"]; !ok {
		t.Errorf("%s: no dtk.sig", what)
	}
}

// A module published to a real registry (the CNCF distribution registry,
// TLS with its own CA, a login) is pushed from it into a real coordinator
// and deployed on a real agent: the coordinator holds every file of the
// folder byte for byte (dtk.sig included); a tag other than the module's
// version is refused; credentials come from the Docker configuration or
// from standard input, and without any the registry's refusal says what
// to do.
func TestE2E_OCI_PublishPushDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	reg := ocitest.Start(t, ociRegistryIP, ocitest.Options{})
	addr := ociCoordIP + ":7070"
	startAgent(t, "oci-coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", ociCoordIP+":7946")
	startAgent(t, "oci-node", "--data-dir", filepath.Join(root, "node"), "--serf-addr", ociAgentIP+":7946",
		"--join", ociCoordIP+":7946", "--label", "zone=oci")
	mod := filepath.Join(root, "shared")
	sharedModule(t, mod, "1.0.0")
	local := ocitest.TreeDigests(t, mod)
	packed, err := archive.Pack(mod)
	if err != nil {
		t.Fatal(err)
	}
	repo := "oci://" + reg.Host + "/dtk/shared"
	withDockerLogin := []string{"DOCKER_CONFIG=" + reg.DockerConfig}
	noLogin := []string{"DOCKER_CONFIG=" + t.TempDir()}

	// Publish: offline checks, then the registry; the tag defaults to the
	// module's version, and another tag is refused before any upload.
	out, _ := mustCtlIO(t, addr, withDockerLogin, "", "module", "publish", mod, repo, "--registry-ca", reg.CAFile, "--json")
	var art struct {
		Reference, Digest, Module, Version string
		ArchiveDigest                      string `json:"archive_digest"`
	}
	if err := json.Unmarshal([]byte(out), &art); err != nil {
		t.Fatalf("publish --json: %v\n%s", err, out)
	}
	if art.Reference != repo+":1.0.0" || art.Module != "shared" || art.Version != "1.0.0" || art.ArchiveDigest != archive.Digest(packed) {
		t.Fatalf("published %+v; the folder packs to %s", art, archive.Digest(packed))
	}
	out, errOut, code := ctlIO(t, addr, withDockerLogin, "", "module", "publish", mod, repo+":1.1.0", "--registry-ca", reg.CAFile)
	if code != 2 || !strings.Contains(errOut, "the tag 1.1.0 is not the version of shared@1.0.0") {
		t.Fatalf("publish to another tag: exit %d\n%s%s", code, out, errOut)
	}
	if tags, _ := os.ReadDir(filepath.Join(reg.Storage, "docker/registry/v2/repositories/dtk/shared/_manifests/tags")); len(tags) != 1 {
		t.Fatalf("the registry has %d tags, want only 1.0.0", len(tags))
	}

	// Push from the registry into the cluster, the password on stdin and
	// no Docker configuration.
	waitLeader(t, addr)
	out, _ = mustCtlIO(t, addr, noLogin, reg.Password+"\n", "module", "push", repo+":1.0.0",
		"--registry-ca", reg.CAFile, "--registry-username", reg.Username, "--registry-password-stdin")
	if !strings.Contains(out, "pulled "+repo+":1.0.0: shared@1.0.0, manifest "+art.Digest) || !strings.Contains(out, "pushed shared@1.0.0 (") {
		t.Fatalf("push output:\n%s", out)
	}
	digests := pushedDigests(t, addr)
	if digests["shared@1.0.0"] != archive.Digest(packed) {
		t.Fatalf("the coordinator records %s, the folder packs to %s", digests["shared@1.0.0"], archive.Digest(packed))
	}
	sameFiles(t, "the coordinator's copy", local, coordinatorFiles(t, addr, digests["shared@1.0.0"]))

	// The same artifact by digest, with the Docker configuration's login:
	// the same module, nothing new.
	mustCtlIO(t, addr, withDockerLogin, "", "module", "push", repo+"@"+art.Digest, "--registry-ca", reg.CAFile)

	// Deploy it.
	waitFor(t, 60*time.Second, "the node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Contains(out, `"status": "up"`)
	})
	mustCtl(t, addr, "service", "stage", "shared", "--template", "shared/site")
	if out := mustCtl(t, addr, "service", "deploy", "shared", "--wait", "--timeout", "2m"); !strings.Contains(out, "converged") {
		t.Fatalf("deploy:\n%s", out)
	}
	var note string
	filepath.WalkDir(filepath.Join(root, "node"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "shared-note.txt" {
			b, _ := os.ReadFile(p)
			note = string(b)
		}
		return nil
	})
	if note != "hi from 1.0.0\n" {
		t.Fatalf("the step wrote %q", note)
	}

	// Refusals: no login; a tag the registry lacks; the registry's
	// certificate without its CA. Each is exit 1 and says why.
	for _, tc := range []struct {
		env  []string
		args []string
		msg  string
	}{
		{noLogin, []string{repo + ":1.0.0", "--registry-ca", reg.CAFile}, "docker login"},
		{withDockerLogin, []string{repo + ":9.9.9", "--registry-ca", reg.CAFile}, "no such tag"},
		{withDockerLogin, []string{repo + ":1.0.0"}, "certificate"},
	} {
		out, errOut, code := ctlIO(t, addr, tc.env, "", append([]string{"module", "push"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("push %v: exit %d, want 1 mentioning %q\n%s%s", tc.args, code, tc.msg, out, errOut)
		}
	}
}

// A module kept in a git repository (made here with the git binary: two
// tags, the module changing between them) is pushed into a real
// coordinator by tag and by commit; the coordinator holds each version's
// files as they were at that commit, dtk.sig included; the commit pushed
// is printed; a ref the repository lacks is exit 1, bad syntax exit 2.
func TestE2E_Git_PushByTagAndCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "git", "git")
	root := t.TempDir()
	addr := ociCoordIP + ":7070"
	startAgent(t, "git-coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", ociCoordIP+":7946")

	repo := filepath.Join(root, "repo")
	mod := filepath.Join(repo, "modules", "shared")
	git := gitIn(t, repo, root)
	os.MkdirAll(repo, 0o755)
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README.md"), []byte("modules\n"), 0o644)
	sharedModule(t, mod, "1.0.0")
	git("add", "-A")
	git("commit", "-q", "-m", "shared 1.0.0")
	git("tag", "v1.0.0")
	c1, files1 := git("rev-parse", "HEAD"), ocitest.TreeDigests(t, mod)
	sharedModule(t, mod, "1.1.0")
	os.WriteFile(filepath.Join(mod, "files", "added-in-1.1.txt"), []byte("new\n"), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "shared 1.1.0")
	git("tag", "-a", "-m", "release 1.1.0", "v1.1.0")
	c2, files2 := git("rev-parse", "HEAD"), ocitest.TreeDigests(t, mod)
	git("commit", "-q", "--allow-empty", "-m", "later")

	waitLeader(t, addr)
	byTag := "git::file://" + repo + "//modules/shared?ref=v1.0.0"
	out := mustCtl(t, addr, "module", "push", byTag)
	if !strings.Contains(out, "checked out "+byTag+" at commit "+c1+" (refs/tags/v1.0.0)\npushed shared@1.0.0 (") {
		t.Fatalf("push by tag:\n%s", out)
	}
	byCommit := "git::" + repo + "//modules/shared?ref=" + c2
	out = mustCtl(t, addr, "module", "push", byCommit)
	if !strings.Contains(out, "checked out "+byCommit+" at commit "+c2+"\npushed shared@1.1.0 (") {
		t.Fatalf("push by commit:\n%s", out)
	}
	digests := pushedDigests(t, addr)
	sameFiles(t, "shared@1.0.0 from v1.0.0", files1, coordinatorFiles(t, addr, digests["shared@1.0.0"]))
	sameFiles(t, "shared@1.1.0 from "+c2[:8], files2, coordinatorFiles(t, addr, digests["shared@1.1.0"]))
	if list := mustCtl(t, addr, "module", "list"); !strings.Contains(list, "1.0.0") || !strings.Contains(list, "1.1.0") {
		t.Fatalf("module list:\n%s", list)
	}

	// The annotated tag, by name, is the same commit and the same module.
	out = mustCtl(t, addr, "module", "push", "git::"+repo+"//modules/shared?ref=v1.1.0")
	if !strings.Contains(out, "at commit "+c2+" (refs/tags/v1.1.0)") {
		t.Fatalf("push by annotated tag:\n%s", out)
	}

	for _, tc := range []struct {
		src  string
		code int
		msg  string
	}{
		{"git::" + repo + "//modules/shared?ref=v2.0.0", 1, `"v2.0.0" is not a tag, branch or commit there (tags: v1.0.0, v1.1.0; branches: main)`},
		{"git::" + repo + "//modules/shared?ref=" + strings.Repeat("0", 40), 1, "no commit on a branch or tag has that hash"},
		{"git::" + repo + "//modules/missing?ref=v1.0.0", 1, `no folder "modules/missing"`},
		{"git::" + filepath.Join(root, "nowhere") + "//modules/shared?ref=v1.0.0", 1, "no git repository"},
		{"git::" + repo + "//modules/shared?ref=v1..0", 2, "not a valid tag, branch or commit name"},
		{"git::" + repo + "//../shared?ref=v1.0.0", 2, "inside the repository"},
		{"git::" + repo + "//modules/shared?tag=v1.0.0", 2, `unsupported parameter "tag"`},
	} {
		out, errOut, code := ctl(t, addr, "module", "push", tc.src)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("push %s: exit %d, want %d mentioning %q\n%s%s", tc.src, code, tc.code, tc.msg, out, errOut)
		}
	}
	if got := pushedDigests(t, addr); len(got) != 2 {
		t.Errorf("modules after the refusals: %v", got)
	}
}

// gitIn returns a runner of the git binary in repo, with a fixed identity
// and no system or user configuration (HOME is home).
func gitIn(t *testing.T, repo, home string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
			"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
}
