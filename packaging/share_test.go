package packaging

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// With a ShareDir (make completions man), both packages carry dtkctl's
// shell completions where each shell looks for vendor completions, and
// its man pages.
func TestPackages_ShellCompletionsAndManPages(t *testing.T) {
	requireTool(t, "dpkg-deb", "dpkg")
	bin, share := t.TempDir(), t.TempDir()
	for _, f := range []string{
		filepath.Join(bin, "dtk-agent"), filepath.Join(bin, "dtkctl"),
		filepath.Join(share, "completions", "dtkctl.bash"), filepath.Join(share, "completions", "_dtkctl"),
		filepath.Join(share, "completions", "dtkctl.fish"),
		filepath.Join(share, "man", "dtkctl.1.gz"), filepath.Join(share, "man", "dtkctl-service-deploy.1.gz"),
	} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Version: "v1.0.0", Arch: runtime.GOARCH, BinDir: bin, RepoDir: "..", ShareDir: share,
		OutDir: t.TempDir(), MTime: time.Unix(1700000000, 0)}
	deb, rpm := buildPackages(t, o)
	list := run(t, "dpkg-deb", "--contents", deb)
	for _, w := range []string{BashCompletionPath, ZshCompletionPathDeb, FishCompletionPath,
		ManDir + "/dtkctl.1.gz", ManDir + "/dtkctl-service-deploy.1.gz"} {
		if !strings.Contains(list, "."+w+"\n") {
			t.Errorf("deb lacks %s:\n%s", w, list)
		}
	}
	if _, err := os.Stat(rpm); err != nil {
		t.Fatal(err)
	}
	requireTool(t, "rpm", "rpm")
	list = run(t, "rpm", "-qlp", rpm)
	for _, w := range []string{BashCompletionPath, ZshCompletionPathRPM, FishCompletionPath, ManDir + "/dtkctl.1.gz"} {
		if !strings.Contains(list, w+"\n") {
			t.Errorf("rpm lacks %s:\n%s", w, list)
		}
	}
}
