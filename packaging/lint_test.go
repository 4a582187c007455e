package packaging

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	lintOnce           sync.Once
	lintDeb, lintRPM   string
	lintErr            error
	lintDir, lintShare string
)

// lintPackages builds the packages as a release has them, once: real
// binaries, dtkctl's completions and man pages, signed with the test key.
func lintPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	bin := binaries(t)
	k := signingKey(t)
	lintOnce.Do(func() {
		lintDir, lintErr = os.MkdirTemp("", "dtk-packaging-lint-")
		if lintErr != nil {
			return
		}
		lintShare = filepath.Join(lintDir, "share")
		if lintErr = writeShare(bin, lintShare); lintErr != nil {
			return
		}
		o := Options{Version: "v1.0.0", Arch: runtime.GOARCH, BinDir: bin, RepoDir: "..", ShareDir: lintShare,
			OutDir: filepath.Join(lintDir, "out"), MTime: time.Unix(1700000000, 0), Signer: k.signer}
		var pkgs []string
		pkgs, lintErr = Packages(o)
		for _, p := range pkgs {
			if strings.HasSuffix(p, ".deb") {
				lintDeb = p
			} else {
				lintRPM = p
			}
		}
	})
	if lintErr != nil {
		t.Fatal(lintErr)
	}
	return lintDeb, lintRPM
}

// writeShare does what `make completions man` does, with the dtkctl in bin.
func writeShare(bin, share string) error {
	ctl := filepath.Join(bin, "dtkctl")
	comp := filepath.Join(share, "completions")
	man := filepath.Join(share, "man")
	if err := os.MkdirAll(comp, 0o755); err != nil {
		return err
	}
	for shell, name := range map[string]string{"bash": "dtkctl.bash", "zsh": "_dtkctl", "fish": "dtkctl.fish"} {
		out, err := exec.Command(ctl, "completion", shell).Output()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(comp, name), out, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(ctl, "__man", man)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dtkctl __man: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(man, "*.1"))
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p+".gz", gzipBest(b), 0o644); err != nil {
			return err
		}
		os.Remove(p)
	}
	return nil
}

// lintLines are lintian's or rpmlint's error and warning lines.
var lintLineRE = regexp.MustCompile(`(?m)^(E|W): .*$|^\S+: (E|W): .*$`)

// The signed .deb has no lintian error or warning: what lintian flags by
// design is overridden in packaging/lintian-overrides, each with its
// reason (lintian shows those as O:).
func TestDeb_Lintian_NoErrorsOrWarnings(t *testing.T) {
	requireTool(t, "lintian", "lintian")
	deb, _ := lintPackages(t)
	start := time.Now()
	out, err := exec.Command("lintian", "--allow-root", "--display-info", "--show-overrides", deb).CombinedOutput()
	t.Logf("lintian in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if bad := lintLineRE.FindAllString(string(out), -1); len(bad) > 0 {
		t.Errorf("lintian reports (fix them, or override them with a reason in packaging/lintian-overrides):\n%s",
			strings.Join(bad, "\n"))
	}
	// Exit 2 is "tags at the --fail-on level", which with --show-overrides
	// counts the overridden ones too (without it lintian exits 0 here); 1
	// is lintian failing to run.
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 2) {
		t.Errorf("lintian: %v", err)
	}
	for _, o := range []string{"O: dtk: statically-linked-binary", "O: dtk: misplaced-extra-member-in-deb _gpgorigin"} {
		if !strings.Contains(string(out), o) {
			t.Errorf("lintian output lacks %q: the package changed, check packaging/lintian-overrides", o)
		}
	}
}

// The signed .rpm is clean for rpmlint with packaging/rpmlint.toml, whose
// filters each say why. rpmlint unpacks with rpm2cpio | cpio, and nfpm's
// payload names files by absolute path: a cpio that refuses absolute names
// goes first on PATH, and the test checks that nothing landed in /.
func TestRPM_Rpmlint_Clean(t *testing.T) {
	requireTool(t, "rpmlint", "rpmlint")
	requireTool(t, "cpio", "cpio")
	requireTool(t, "rpmkeys", "rpm")
	_, rpm := lintPackages(t)
	cpio, _ := exec.LookPath("cpio")
	wrap := t.TempDir()
	script := "#!/bin/sh\nexec " + cpio + " --no-absolute-filenames \"$@\"\n"
	if err := os.WriteFile(filepath.Join(wrap, "cpio"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	leaks := []string{CtlPath, AgentPath, DocDir, LicenseDir, ConfigPath}
	before := map[string]bool{}
	for _, p := range leaks {
		_, err := os.Lstat(p)
		before[p] = err == nil
	}
	// rpmlint checks the signature against rpm's database: a throwaway
	// one holding the test key, named in the macros of a throwaway HOME.
	home, db := t.TempDir(), t.TempDir()
	run(t, "rpmkeys", "--dbpath", db, "--import", signingKey(t).pubArmored)
	if err := os.WriteFile(filepath.Join(home, ".rpmmacros"), []byte("%_dbpath "+db+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmlint", "-c", "rpmlint.toml", rpm)
	cmd.Env = append(os.Environ(), "PATH="+wrap+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+home)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("rpmlint in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, p := range leaks {
		if _, err := os.Lstat(p); err == nil && !before[p] {
			t.Errorf("rpmlint's unpacking wrote %s on this machine: remove what the rpm lists (rpm -qlp)", p)
		}
	}
	if bad := lintLineRE.FindAllString(string(out), -1); len(bad) > 0 {
		t.Errorf("rpmlint reports (fix them, or filter them with a reason in packaging/rpmlint.toml):\n%s", strings.Join(bad, "\n"))
	}
	if err != nil {
		t.Errorf("rpmlint: %v", err)
	}
	if !strings.Contains(string(out), "0 errors, 0 warnings") {
		t.Errorf("rpmlint's summary is not 0 errors, 0 warnings")
	}
}

// The .deb carries a DEP-5 copyright file naming every module linked into
// the binaries with its licence, and the changelog made from CHANGELOG.md;
// the .rpm the licences as %license, the changelog, its relations.
func TestPackages_LicencesChangelogRelations(t *testing.T) {
	requireTool(t, "dpkg-deb", "dpkg")
	deb, rpm := lintPackages(t)
	dir := t.TempDir()
	run(t, "dpkg-deb", "--extract", deb, dir)
	cr, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/dtk/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n",
		"Files: *\nCopyright: " + Copyright + "\nLicense: Apache-2.0\n",
		"Files: vendor/github.com/hashicorp/raft/*\n", "License: MPL-2.0\n",
		"Files: vendor/std/*\n", "Files: vendor/github.com/kardianos/service/*\n", "License: Zlib\n",
		"NOTICE:", // agext/levenshtein's NOTICE travels with it
		"\nLicense: Apache-2.0\n On Debian systems, the complete text",
	} {
		if !strings.Contains(string(cr), w) {
			t.Errorf("copyright lacks %q", w)
		}
	}
	f, err := os.Open(filepath.Join(dir, "usr/share/doc/dtk/changelog.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := io.ReadAll(zr)
	f.Close()
	if !strings.HasPrefix(string(cl), "dtk (1.0.0) unstable; urgency=medium\n") || !strings.Contains(string(cl), "\n -- "+DefaultMaintainer+"  ") {
		t.Errorf("changelog.gz:\n%s", cl)
	}
	info := run(t, "dpkg-deb", "--field", deb, "Suggests", "Description")
	if !strings.Contains(info, "Suggests: "+strings.Join(DebSuggests, ", ")) || !strings.Contains(info, "Description: "+Summary+"\n") {
		t.Errorf("control fields:\n%s", info)
	}

	requireTool(t, "rpm", "rpm")
	q := run(t, "rpm", "-qp", "--nosignature", "--qf", "%{LICENSE}|%{SUMMARY}|[%{RECOMMENDNAME} ]|[%{SUGGESTNAME} ]", rpm)
	if want := License + "|" + Summary + "|bash |puppet ansible-core podman "; q != want {
		t.Errorf("rpm tags %q, want %q", q, want)
	}
	lic := run(t, "rpm", "-qp", "--nosignature", "--licensefiles", rpm)
	for _, w := range []string{LicenseDir + "/LICENSE", LicenseDir + "/NOTICE", LicenseDir + "/third-party-licenses"} {
		if !strings.Contains(lic, w+"\n") {
			t.Errorf("rpm %%license lacks %s:\n%s", w, lic)
		}
	}
	if cl := run(t, "rpm", "-qp", "--nosignature", "--changelog", rpm); !strings.Contains(cl, "- 1.0.0-1\n- Added: ") {
		t.Errorf("rpm changelog:\n%s", cl)
	}
}
