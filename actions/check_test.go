package actions

import (
	"archive/tar"
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// The kinds whose dry run predicts are the ones a check runs as a dry run.
func TestCanPredict(t *testing.T) {
	want := map[string]bool{"bash": false, "exec": false, "puppet": true, "ansible": true, "container": true}
	for _, kind := range Kinds() {
		r, _ := Lookup(kind)
		if got, ok := want[kind]; !ok || CanPredict(r) != got {
			t.Errorf("CanPredict(%s) = %v, want %v (known: %v)", kind, CanPredict(r), got, ok)
		}
	}
}

// Proves: a --noop run after a hand edit is Changed and names the resource
// out of sync, Puppet's own event line, without the "Would have triggered"
// lines that follow from it; the file is left as edited.
func TestPuppet_DryRun_NamesResourcesOutOfSync(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"manifests/site.pp": siteManifest})
	target := filepath.Join(t.TempDir(), "motd")
	res := dryRunAfterHandEdit(t, request(t, dir, plan.Action{Kind: "puppet", Manifest: "manifests/site.pp"},
		map[string]any{"path": target, "greeting": "hi", "port": 8080}), target)
	want := "/Stage[main]/Main/File[" + target + "]/content: current_value '{"
	if len(res.Changes) != 1 || !strings.HasPrefix(res.Changes[0], want) || !strings.HasSuffix(res.Changes[0], "(noop)") {
		t.Fatalf("changes = %q, want one line %q...(noop)", res.Changes, want)
	}
}

// dryRunAfterHandEdit converges req, checks that a dry run then predicts
// no change, edits target by hand and returns a dry run's result, having
// checked that it is Changed and left the edit alone.
func dryRunAfterHandEdit(t *testing.T, req Request, target string) Result {
	t.Helper()
	wantState(t, run(t, req), Changed)
	dry := req
	dry.DryRun = true
	if res := run(t, dry); res.State != OK || len(res.Changes) != 0 {
		t.Fatalf("dry run of a converged %s: %s, changes %q", req.Action.Kind, res.State, res.Changes)
	}
	if err := os.WriteFile(target, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := run(t, dry)
	wantState(t, res, Changed)
	if got := readFile(t, target); got != "edited by hand\n" {
		t.Fatalf("the dry run changed the file: %q", got)
	}
	return res
}

// Proves: a --check run after a hand edit is Changed, names the task that
// would change and shows the diff (--diff); the file is left as edited.
func TestAnsible_DryRun_NamesChangedTasks(t *testing.T) {
	needTool(t, "ansible-playbook", "ansible-core")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"site.yml": sitePlaybook})
	target := filepath.Join(t.TempDir(), "page")
	res := dryRunAfterHandEdit(t, request(t, dir, plan.Action{Kind: "ansible", Playbook: "site.yml"},
		map[string]any{"path": target, "greeting": "hi", "http_port": 8080}), target)
	if want := []string{"task [the page]: changed"}; !slices.Equal(res.Changes, want) {
		t.Errorf("changes = %q, want %q", res.Changes, want)
	}
	if !strings.Contains(res.Output, "-edited by hand") || !strings.Contains(res.Output, "+hello hi on port 8080") {
		t.Errorf("dry run output lacks the diff: %q", res.Output)
	}
}

// The change finders read what each kind prints, within bounds.
func TestChangeFinders(t *testing.T) {
	scan := func(s string) *bufio.Scanner { return bufio.NewScanner(strings.NewReader(s)) }
	puppet := `Notice: Compiled catalog for web in environment production in 0.02 seconds
Notice: /Stage[main]/Ntp::Config/File[/etc/ntp.conf]/content: current_value '{md5}a', should be '{md5}b' (noop)
Notice: Class[Ntp::Config]: Would have triggered 'refresh' from 1 event
Notice: Stage[main]: Would have triggered 'refresh' from 1 event
Notice: Applied catalog in 0.01 seconds
`
	if got := puppetChanges(scan(puppet)); !slices.Equal(got, []string{
		"/Stage[main]/Ntp::Config/File[/etc/ntp.conf]/content: current_value '{md5}a', should be '{md5}b' (noop)"}) {
		t.Errorf("puppet: %q", got)
	}
	ansible := `PLAY [all] ****
TASK [unchanged] ****
ok: [localhost]
TASK [a loop] ****
changed: [localhost] => (item=1)
changed: [localhost] => (item=2)
TASK [the page] ****
--- before: /x
+++ after: /x
changed: [localhost]
RUNNING HANDLER [restart it] ****
changed: [localhost]
PLAY RECAP ****
localhost : ok=4 changed=3
`
	if got := ansibleChanges(scan(ansible)); !slices.Equal(got, []string{
		"task [a loop]: changed", "task [the page]: changed", "handler [restart it]: changed"}) {
		t.Errorf("ansible: %q", got)
	}
	container := "dtk: loading image x\ndtk: would replace container c: it is not running\n"
	if got := containerChanges(scan(container)); !slices.Equal(got, []string{"would replace container c: it is not running"}) {
		t.Errorf("container: %q", got)
	}
	many := strings.Repeat("Notice: /Stage[main]/Main/File[/"+strings.Repeat("x", 600)+"]/ensure: current_value 'absent', should be 'file' (noop)\n", 30)
	got := puppetChanges(scan(many))
	if len(got) != maxChanges || len(got[0]) != maxChangeLine+len("...") {
		t.Errorf("bounds: %d lines, the first %d bytes", len(got), len(got[0]))
	}
}

// The image ID of a tarball is read once per file version: a container's
// check runs on every reconcile interval.
func TestArchiveIDCache(t *testing.T) {
	file := filepath.Join(t.TempDir(), "image.tar")
	write := func(config string) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		manifest := `[{"Config":"` + config + `.json","RepoTags":["localhost/box:1"]}]`
		tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(manifest))})
		tw.Write([]byte(manifest))
		tw.Close()
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var c archiveIDCache
	write("aaaa")
	if id, err := c.get(file, "localhost/box:1"); err != nil || id != "aaaa" {
		t.Fatalf("get = %q, %v", id, err)
	}
	key := ""
	for k := range c.ids {
		key = k
	}
	c.ids[key] = "remembered"
	if id, _ := c.get(file, "box:1"); id != "aaaa" {
		t.Errorf("another reference of the same file: %q, want it read (aaaa)", id)
	}
	if id, _ := c.get(file, "localhost/box:1"); id != "remembered" {
		t.Errorf("the same file again: %q, want the remembered ID", id)
	}
	write("bbbbbb") // another size
	if id, _ := c.get(file, "localhost/box:1"); id != "bbbbbb" {
		t.Errorf("after the file changed: %q, want bbbbbb", id)
	}
}
