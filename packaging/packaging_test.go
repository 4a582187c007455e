package packaging

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/config"
)

func TestPackageVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                   "1.2.3",
		"1.2.3":                    "1.2.3",
		"v1.2.3-dirty":             "1.2.3+dirty",
		"v1.2.3-4-gabc1234":        "1.2.3+git4.abc1234",
		"v1.2.3-4-gabc1234-dirty":  "1.2.3+git4.abc1234.dirty",
		"v1.2.3-rc.1":              "1.2.3~rc.1",
		"v1.2.3-rc.1-2-gabc1234":   "1.2.3~rc.1+git2.abc1234",
		"v1.2.3-beta-two":          "1.2.3~beta.two",
		"abc1234":                  "0.0.0~gitabc1234",
		"abc1234-dirty":            "0.0.0~gitabc1234.dirty",
		"dev":                      "0.0.0~dev",
		"":                         "0.0.0~dev",
		"feature/x y":              "0.0.0~feature.x.y",
		"4f9bfdc1e2d3c4b5a6978877": "0.0.0~git4f9bfdc1e2d3c4b5a6978877",
	} {
		if got := PackageVersion(in); got != want {
			t.Errorf("PackageVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// The versions sort as releases should, by dpkg's own rules.
func TestPackageVersion_OrdersLikeDpkg(t *testing.T) {
	requireTool(t, "dpkg", "dpkg")
	order := []string{"abc1234", "v0.9.0", "v1.0.0-rc.1", "v1.0.0-rc.1-3-gabc1234", "v1.0.0", "v1.0.0-dirty", "v1.0.0-2-gdef5678", "v1.0.1"}
	for i := 1; i < len(order); i++ {
		a, b := PackageVersion(order[i-1]), PackageVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not order %s (%s) before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

func TestDefaultConfigurationIsValid(t *testing.T) {
	src, err := os.ReadFile("agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Check(src, "agent.hcl"); err != nil {
		t.Fatal(err)
	}
}

// The default configuration shows the security fields, commented out;
// uncommented they are real fields, and the files they name are in
// /etc/dtk/tls.
func TestDefaultConfiguration_ShowsSecurityFields(t *testing.T) {
	src, err := os.ReadFile("agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "# --- Security ")
	if start < 0 {
		t.Fatal("agent.hcl has no Security section")
	}
	section := text[start:]
	if end := strings.Index(section[1:], "# ---"); end >= 0 {
		section = section[:end+1]
	}
	for _, w := range []string{
		"# tls {\n", `#   ca_file   = "/etc/dtk/tls/dtk-ca.pem"`, "#   cert_file = ", "#   key_file  = ", "# }\n",
		"# encrypt      = ", "# keyring_file = ", "# join_token   = ", "# insecure     = false ", "dtk-agent keygen",
	} {
		if !strings.Contains(section, w) {
			t.Errorf("the Security section lacks %q:\n%s", w, section)
		}
	}
	// Uncomment one level: "# key = ..." and the block's lines.
	var b strings.Builder
	setting := regexp.MustCompile(`^# ( *[a-z_]+ +=| *tls \{|\})`)
	for _, line := range strings.Split(section, "\n") {
		if setting.MatchString(line) {
			line = strings.TrimPrefix(line, "# ")
		}
		b.WriteString(line + "\n")
	}
	c, err := config.Parse([]byte(b.String()), "agent.hcl (security uncommented)")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	for _, f := range []string{config.FieldTLSCAFile, config.FieldTLSCertFile, config.FieldTLSKeyFile, config.FieldEncrypt,
		config.FieldKeyringFile, config.FieldJoinToken, config.FieldEnrollAddr, config.FieldInsecure} {
		if !c.IsSet(f) {
			t.Errorf("%s is not among the uncommented settings:\n%s", f, b.String())
		}
	}
	if c.Insecure {
		t.Error("the example sets insecure = true")
	}
	for _, p := range []string{c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.KeyringFile} {
		if filepath.Dir(p) != TLSDir {
			t.Errorf("%s is not in %s", p, TLSDir)
		}
	}
}

func TestScripts_ParseAsPOSIXShell(t *testing.T) {
	scripts, _ := filepath.Glob("scripts/*.sh")
	scripts = append(scripts, "install.sh")
	for _, s := range scripts {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
}

// --- slow tests: real binaries, real packages --------------------------

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds static dtk-agent and dtkctl for this machine once.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries and packages; skipped with -short")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "dtk-packaging-bin-")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"dtk-agent", "dtkctl"} {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v1.0.0-test",
				"-o", filepath.Join(binDir, name), "./cmd/"+name)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{binDir, pkgDir, keyDir, lintDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

var (
	pkgOnce          sync.Once
	pkgDir           string
	sharedPkgs       []string
	pkgErr           error
	sharedPkgOptions Options
)

// sharedPackages builds the v1.0.0 packages once for the tests that only
// read them.
func sharedPackages(t *testing.T) (Options, string, string) {
	t.Helper()
	bin := binaries(t)
	pkgOnce.Do(func() {
		pkgDir, pkgErr = os.MkdirTemp("", "dtk-packaging-pkgs-")
		if pkgErr != nil {
			return
		}
		sharedPkgOptions = Options{Version: "v1.0.0", Arch: runtime.GOARCH, BinDir: bin, RepoDir: "..", OutDir: pkgDir, MTime: time.Unix(1700000000, 0)}
		start := time.Now()
		sharedPkgs, pkgErr = Packages(sharedPkgOptions)
		t.Logf("built %s in %s", strings.Join(sharedPkgs, ", "), time.Since(start).Round(time.Millisecond))
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	var deb, rpm string
	for _, p := range sharedPkgs {
		if filepath.Ext(p) == ".deb" {
			deb = p
		} else {
			rpm = p
		}
	}
	return sharedPkgOptions, deb, rpm
}

func options(t *testing.T, version string) Options {
	return Options{
		Version: version, Arch: runtime.GOARCH, BinDir: binaries(t), RepoDir: "..",
		OutDir: t.TempDir(), MTime: time.Unix(1700000000, 0),
	}
}

func buildPackages(t *testing.T, o Options) (debPath, rpmPath string) {
	t.Helper()
	start := time.Now()
	pkgs, err := Packages(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", strings.Join(pkgs, ", "), time.Since(start).Round(time.Millisecond))
	for _, p := range pkgs {
		switch filepath.Ext(p) {
		case ".deb":
			debPath = p
		case ".rpm":
			rpmPath = p
		}
	}
	if debPath == "" || rpmPath == "" {
		t.Fatalf("packages: %v", pkgs)
	}
	return debPath, rpmPath
}

func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not found (apt-get install %s) and DTK_REQUIRE_TOOLS is set", name, pkg)
		}
		t.Skipf("%s not found (apt-get install %s)", name, pkg)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// scratchRoot prepares an empty root that dpkg can install into: its own
// package database and an /etc with only root in it.
func scratchRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	files := map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkgRoot runs dpkg on the scratch root. --force-script-chrootless runs
// the maintainer scripts on this machine with DPKG_ROOT set, and they keep
// to DPKG_ROOT (the test checks that this machine's /etc/passwd and
// /etc/group do not change).
func dpkgRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	base := []string{"--root=" + root, "--force-not-root", "--force-script-chrootless",
		"--log=" + filepath.Join(root, "var/log/dpkg.log")}
	return run(t, "dpkg", append(base, args...)...)
}

// startsRE finds a command (not a message) that starts, enables or
// restarts a unit.
var startsRE = regexp.MustCompile(`(?m)^\s*(systemctl|deb-systemd-invoke|service)\b.*\b(start|enable|restart|try-restart|reload-or-restart)\b.*$`)

type want struct {
	path     string
	mode     os.FileMode
	uid, gid string // "root" (0) or "dtk" (the dtk ids of the scratch root)
}

func checkFiles(t *testing.T, root string, ids map[string]string, wants []want) {
	t.Helper()
	for _, w := range wants {
		fi, err := os.Lstat(filepath.Join(root, w.path))
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		if fi.Mode().Perm() != w.mode.Perm() || fi.IsDir() != w.mode.IsDir() {
			t.Errorf("%s: mode %v, want %v", w.path, fi.Mode(), w.mode)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != ids[w.uid]+":"+groupID(ids, w.gid) {
			t.Errorf("%s: owner %s, want %s:%s", w.path, got, w.uid, w.gid)
		}
	}
}

func groupID(ids map[string]string, name string) string { return ids["g"+name] }

// dtkIDs reads the dtk user's ids from the scratch root's passwd.
func dtkIDs(t *testing.T, root string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"root": "0", "groot": "0"}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 7 && f[0] == "dtk" {
			ids["dtk"], ids["gdtk"] = f[2], f[3]
			if f[6] != "/usr/sbin/nologin" || f[5] != "/var/lib/dtk" {
				t.Errorf("dtk user: %s", line)
			}
		}
	}
	if ids["dtk"] == "" {
		t.Fatalf("no dtk user in the scratch root:\n%s", b)
	}
	return ids
}

func TestDeb_InstallUpgradeRemove_ScratchRoot(t *testing.T) {
	requireTool(t, "dpkg", "dpkg")
	requireTool(t, "useradd", "passwd")
	if os.Geteuid() != 0 {
		t.Skip("chown in the scratch root needs root")
	}
	o, debPath, _ := sharedPackages(t)
	hostPasswd, hostGroup := fileHash(t, "/etc/passwd"), fileHash(t, "/etc/group")
	t.Cleanup(func() {
		if fileHash(t, "/etc/passwd") != hostPasswd || fileHash(t, "/etc/group") != hostGroup {
			t.Errorf("this machine's /etc/passwd or /etc/group changed: a maintainer script ignored DPKG_ROOT")
		}
	})

	// The control part: conffiles and scripts.
	info := run(t, "dpkg-deb", "--info", debPath)
	for _, w := range []string{"Package: dtk", "Version: 1.0.0", "Architecture: " + runtime.GOARCH, "preinst", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, w) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", w, info)
		}
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "--control", debPath, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); string(b) != "/etc/dtk/agent.hcl\n" {
		t.Errorf("conffiles: %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm", "preinst"} {
		b, _ := os.ReadFile(filepath.Join(ctl, s))
		if m := startsRE.FindString(string(b)); m != "" {
			t.Errorf("%s starts or enables something: %q", s, m)
		}
	}

	root := scratchRoot(t)
	out := dpkgRoot(t, root, "--install", debPath)
	if !strings.Contains(out, "Nothing was started or enabled") || !strings.Contains(out, "systemctl enable --now dtk-agent") {
		t.Errorf("install output does not say how to enable:\n%s", out)
	}
	ids := dtkIDs(t, root)
	checkFiles(t, root, ids, []want{
		{"usr/bin/dtk-agent", 0o755, "root", "root"},
		{"usr/bin/dtkctl", 0o755, "root", "root"},
		{"lib/systemd/system/dtk-agent.service", 0o644, "root", "root"},
		{"etc/dtk", os.ModeDir | 0o755, "root", "root"},
		{"etc/dtk/tls", os.ModeDir | 0o700, "root", "root"},
		{"etc/dtk/agent.hcl", 0o640, "root", "dtk"},
		{"var/lib/dtk", os.ModeDir | 0o750, "dtk", "dtk"},
		{"usr/share/doc/dtk/install.md", 0o644, "root", "root"},
	})
	if v := run(t, filepath.Join(root, "usr/bin/dtk-agent"), "version"); !strings.HasPrefix(v, "dtk-agent v1.0.0-test ") {
		t.Errorf("installed dtk-agent version: %s", v)
	}
	run(t, filepath.Join(root, "usr/bin/dtk-agent"), "config", "check", filepath.Join(root, "etc/dtk/agent.hcl"))
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/dtk-agent.service"))
	if want, _ := os.ReadFile("dtk-agent.service"); string(unit) != string(want) {
		t.Errorf("installed unit differs from packaging/dtk-agent.service")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd")); err == nil {
		t.Errorf("the package enabled the unit (etc/systemd exists)")
	}

	// Upgrade: the operator's configuration and state stay.
	cfgPath := filepath.Join(root, "etc/dtk/agent.hcl")
	edited := "# edited by the operator\nlabels = { role = \"web\" }\n"
	os.WriteFile(cfgPath, []byte(edited), 0o640)
	os.WriteFile(filepath.Join(root, "var/lib/dtk/state"), []byte("x"), 0o600)
	// The operator's keys, where the configuration's example puts them.
	caKey := filepath.Join(root, "etc/dtk/tls/dtk-ca-key.pem")
	if err := os.WriteFile(caKey, []byte("the cluster CA key"), 0o600); err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Version, o2.OutDir = "v1.1.0", t.TempDir()
	deb2, _ := buildPackages(t, o2)
	out = dpkgRoot(t, root, "--install", deb2)
	if !strings.Contains(out, "dtk upgraded; your /etc/dtk/agent.hcl was kept") {
		t.Errorf("upgrade output:\n%s", out)
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != edited {
		t.Errorf("upgrade replaced the configuration:\n%s", b)
	}
	if st := run(t, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${Version}", "dtk"); st != "1.1.0" {
		t.Errorf("installed version %q after upgrade", st)
	}
	checkFiles(t, root, ids, []want{
		{"etc/dtk/tls", os.ModeDir | 0o700, "root", "root"},
		{"etc/dtk/tls/dtk-ca-key.pem", 0o600, "root", "root"},
	})

	// Remove keeps the configuration and the state; purge the configuration.
	dpkgRoot(t, root, "--remove", "dtk")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/dtk-agent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("binary left after remove: %v", err)
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != edited {
		t.Errorf("remove touched the configuration")
	}
	out = dpkgRoot(t, root, "--purge", "dtk")
	if _, err := os.Stat(cfgPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("configuration left after purge: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/dtk/state")); err != nil {
		t.Errorf("purge removed the state: %v", err)
	}
	// Keys are never removed with the package: losing the CA key would
	// orphan the cluster.
	if b, err := os.ReadFile(caKey); err != nil || string(b) != "the cluster CA key" {
		t.Errorf("purge touched the keys in /etc/dtk/tls: %q, %v", b, err)
	}
	checkFiles(t, root, ids, []want{{"etc/dtk/tls", os.ModeDir | 0o700, "root", "root"}})
	if !strings.Contains(out, "kept /var/lib/dtk") {
		t.Errorf("purge output:\n%s", out)
	}
}

// dpkg leaves a folder that already exists as it is: /etc/dtk/tls made
// by hand before the package (mkdir: 0755) is made 0700 root by the
// postinst on first install, its keys untouched; afterwards the operator's
// mode stands (a reinstall is an upgrade).
func TestDeb_TLSFolderPrivateEvenIfItExisted(t *testing.T) {
	requireTool(t, "dpkg", "dpkg")
	requireTool(t, "useradd", "passwd")
	if os.Geteuid() != 0 {
		t.Skip("chown in the scratch root needs root")
	}
	_, debPath, _ := sharedPackages(t)
	root := scratchRoot(t)
	tlsDir := filepath.Join(root, "etc/dtk/tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tlsDir, 0o755)
	key := filepath.Join(tlsDir, "server-c1-key.pem")
	if err := os.WriteFile(key, []byte("a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkgRoot(t, root, "--install", debPath)
	ids := dtkIDs(t, root)
	checkFiles(t, root, ids, []want{
		{"etc/dtk/tls", os.ModeDir | 0o700, "root", "root"},
		{"etc/dtk/tls/server-c1-key.pem", 0o600, "root", "root"},
	})
	if b, _ := os.ReadFile(key); string(b) != "a key" {
		t.Errorf("the key changed: %q", b)
	}

	// The operator opens it to the dtk group (a coordinator run as dtk):
	// a reinstall keeps that.
	if err := os.Chmod(tlsDir, 0o750); err != nil {
		t.Fatal(err)
	}
	dpkgRoot(t, root, "--install", debPath)
	checkFiles(t, root, ids, []want{{"etc/dtk/tls", os.ModeDir | 0o750, "root", "root"}})
}

func TestRPM_ListsExpectedFiles(t *testing.T) {
	requireTool(t, "rpm", "rpm")
	_, _, rpmPath := sharedPackages(t)
	list := run(t, "rpm", "-qlvp", rpmPath)
	for _, w := range []string{
		"-rwxr-xr-x    1 root     root", "/usr/bin/dtk-agent", "/usr/bin/dtkctl",
		"/usr/lib/systemd/system/dtk-agent.service",
		"-rw-r-----    1 root     dtk", "/etc/dtk/agent.hcl",
		"drwxr-x---    2 dtk      dtk", "/var/lib/dtk",
	} {
		if !strings.Contains(list, w) {
			t.Errorf("rpm -qlvp lacks %q:\n%s", w, list)
		}
	}
	// Mode and owner of the directory keys go in, exactly.
	if d := run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]", rpmPath); !regexp.MustCompile(`(?m)^drwx------ root root /etc/dtk/tls$`).MatchString(d) {
		t.Errorf("/etc/dtk/tls is not drwx------ root root:\n%s", d)
	}
	if cfg := run(t, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpmPath); !strings.Contains(cfg, "cn /etc/dtk/agent.hcl") {
		t.Errorf("agent.hcl is not %%config(noreplace):\n%s", cfg)
	}
	if v := run(t, "rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}", rpmPath); v != "1.0.0-1" {
		t.Errorf("version %q", v)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", rpmPath)
	for _, w := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "useradd"} {
		if !strings.Contains(scripts, w) {
			t.Errorf("rpm scripts lack %q", w)
		}
	}
}

// From an unpacked bundle alone, install.sh installs into a temporary root;
// a second run keeps the edited configuration; a damaged bundle is refused.
func TestBundle_InstallShIntoTempRoot(t *testing.T) {
	requireTool(t, "sha256sum", "coreutils")
	if os.Geteuid() != 0 {
		t.Skip("install.sh chowns: needs root")
	}
	requireTool(t, "gpgv", "gpgv")
	o, deb, rpm := sharedPackages(t)
	o.OutDir = t.TempDir()
	k := signingKey(t)
	o.Signer = k.signer
	pkgs := []string{deb, rpm}
	start := time.Now()
	bundle, err := Bundle(o, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bundle %s in %s", bundle, time.Since(start).Round(time.Millisecond))
	if filepath.Base(bundle) != "dtk-v1.0.0-linux-"+runtime.GOARCH+".tar.gz" {
		t.Errorf("bundle name %s", bundle)
	}
	unpacked := t.TempDir()
	untar(t, bundle, unpacked)
	dir := filepath.Join(unpacked, "dtk-v1.0.0-linux-"+runtime.GOARCH)
	for _, p := range []string{"bin/dtk-agent", "bin/dtkctl", "install.sh", "README.md", "SHA256SUMS", "SHA256SUMS.asc",
		"LICENSE", "NOTICE", "CHANGELOG.md", "THIRD-PARTY-LICENSES",
		"docs/install.md", "examples/hello/main.hcl", "packages/" + filepath.Base(pkgs[0]), "packages/" + filepath.Base(pkgs[1])} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("bundle lacks %s", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "THIRD-PARTY-LICENSES")); !strings.Contains(string(b), "github.com/hashicorp/raft") ||
		!strings.Contains(string(b), "Go standard library") {
		t.Errorf("THIRD-PARTY-LICENSES does not list the linked modules:\n%.600s", b)
	}
	sums := exec.Command("sha256sum", "--check", "--quiet", "SHA256SUMS")
	sums.Dir = dir
	if out, err := sums.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum --check: %v\n%s", err, out)
	}

	root := scratchRoot(t)
	hostPasswd := fileHash(t, "/etc/passwd")
	out := run(t, filepath.Join(dir, "install.sh"), "--root", root, "--keyring", k.pubBinary)
	if fileHash(t, "/etc/passwd") != hostPasswd {
		t.Fatal("install.sh --root changed this machine's /etc/passwd")
	}
	if !strings.Contains(out, "Nothing was started or enabled") {
		t.Errorf("install.sh output:\n%s", out)
	}
	ids := dtkIDs(t, root)
	checkFiles(t, root, ids, []want{
		{"usr/local/bin/dtk-agent", 0o755, "root", "root"},
		{"usr/local/bin/dtkctl", 0o755, "root", "root"},
		{"etc/systemd/system/dtk-agent.service", 0o644, "root", "root"},
		{"etc/dtk/agent.hcl", 0o640, "root", "dtk"},
		{"etc/dtk/tls", os.ModeDir | 0o700, "root", "root"},
		{"var/lib/dtk", os.ModeDir | 0o750, "dtk", "dtk"},
	})
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/dtk-agent.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/dtk-agent run --config /etc/dtk/agent.hcl\n") ||
		!strings.Contains(string(unit), "ConditionFileIsExecutable=/usr/local/bin/dtk-agent\n") {
		t.Errorf("unit does not run the installed binary:\n%s", unit)
	}
	agent := filepath.Join(root, "usr/local/bin/dtk-agent")
	if v := run(t, agent, "version"); !strings.HasPrefix(v, "dtk-agent v1.0.0-test ") {
		t.Errorf("version: %s", v)
	}
	run(t, agent, "config", "check", filepath.Join(root, "etc/dtk/agent.hcl"))

	// Again, over an edited configuration.
	cfgPath := filepath.Join(root, "etc/dtk/agent.hcl")
	os.WriteFile(cfgPath, []byte("labels = { role = \"db\" }\n"), 0o640)
	out = run(t, filepath.Join(dir, "install.sh"), "--root", root, "--prefix", "/opt/dtk", "--keyring", k.pubBinary)
	if b, _ := os.ReadFile(cfgPath); string(b) != "labels = { role = \"db\" }\n" {
		t.Errorf("second install replaced the configuration")
	}
	if _, err := os.Stat(cfgPath + ".dist"); err != nil || !strings.Contains(out, "agent.hcl.dist") {
		t.Errorf("no agent.hcl.dist beside the kept configuration: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/dtk/bin/dtk-agent")); err != nil {
		t.Errorf("--prefix: %v", err)
	}

	// A damaged bundle is refused before anything is installed.
	os.WriteFile(filepath.Join(dir, "bin/dtkctl"), []byte("tampered"), 0o755)
	root2 := t.TempDir()
	b, err := exec.Command(filepath.Join(dir, "install.sh"), "--root", root2, "--keyring", k.pubBinary).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "checksums do not match") {
		t.Errorf("damaged bundle: %v\n%s", err, b)
	}
	if entries, _ := os.ReadDir(root2); len(entries) != 0 {
		t.Errorf("damaged bundle installed %d entries", len(entries))
	}
}

func TestBundle_SameInputsSameBytes(t *testing.T) {
	o := options(t, "v1.0.0")
	a, err := Bundle(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.OutDir = t.TempDir()
	b, err := Bundle(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fileHash(t, a) != fileHash(t, b) {
		t.Error("two bundles of the same inputs differ")
	}
}

// untar unpacks a .tar.gz with Go (no dependence on the tar flavour).
func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uname != "root" || h.Uid != 0 {
			t.Errorf("%s owned by %s/%d", h.Name, h.Uname, h.Uid)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		default:
			t.Errorf("unexpected entry %s (type %c)", h.Name, h.Typeflag)
		}
	}
}
