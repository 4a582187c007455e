package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/packaging"
)

// needTool skips a test when a tool is missing, or fails it when
// DTK_REQUIRE_TOOLS is set (as CI does), naming the Debian package: the
// convention of actions/helpers_test.go.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is not installed: apt-get install %s (DTK_REQUIRE_TOOLS is set, so this test may not skip)", tool, pkg)
	}
	t.Skipf("%s is not installed: apt-get install %s (set DTK_REQUIRE_TOOLS=1 to fail instead)", tool, pkg)
}

// The air-gapped flow of docs/install.md, with real processes and nothing
// but loopback: `make dist` builds the self-contained bundle for this
// architecture; its install.sh installs into a scratch root; from the
// installed binaries alone, a source coordinator takes a module carrying a
// container image tarball (built from busybox-static and removed from
// local storage, so only the tarball carries it) and `dtkctl bundle
// export` writes it to one file; an air-gapped cluster (a coordinator, two
// agents) imports the file, deploys the container on both agents with
// --network none (podman loads the image from the module; no registry is
// reachable, and the agents' proxy settings point nowhere), and deletes it.
func TestE2E_Airgap_BundleInstallImportDeployContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "podman", "podman runc")
	needTool(t, "runc", "runc")
	needTool(t, "busybox", "busybox-static")
	needTool(t, "make", "make")
	needTool(t, "sha256sum", "coreutils")
	if os.Geteuid() != 0 {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatal("podman here runs as root only (no rootless setup): run the test as root")
		}
		t.Skip("podman here runs as root only: run as root")
	}
	root := t.TempDir()
	timings := map[string]time.Duration{}
	phase := func(name string, start time.Time) { timings[name] = time.Since(start).Round(10 * time.Millisecond) }
	defer func() {
		t.Logf("timings: make dist %s, install %s, image %s, push+export %s, import %s, deploy %s, delete %s",
			timings["dist"], timings["install"], timings["image"], timings["export"], timings["import"], timings["deploy"], timings["delete"])
	}()

	// --- 1. make dist (this architecture only), unpack, install.sh --root.
	start := time.Now()
	const version = "v0.0.0-airgap"
	dist := filepath.Join(root, "dist")
	// Signed, as a release is: a throwaway key, and install.sh checks the
	// bundle's SHA256SUMS.asc with its public key.
	needTool(t, "gpgv", "gpgv")
	keySecret, keyPublic := releaseKey(t, root)
	mk := exec.Command("make", "-C", "../..", "dist", "DIST="+dist, "ARCHES="+runtime.GOARCH, "VERSION="+version, "SIGN_KEY="+keySecret)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	tarball := filepath.Join(dist, fmt.Sprintf("dtk-%s-linux-%s.tar.gz", version, runtime.GOARCH))
	phase("dist", start)
	start = time.Now()
	unpacked := filepath.Join(root, "unpacked")
	untarGz(t, tarball, unpacked)
	installRoot := filepath.Join(root, "site")
	installSh := filepath.Join(unpacked, fmt.Sprintf("dtk-%s-linux-%s", version, runtime.GOARCH), "install.sh")
	if out, err := exec.Command(installSh, "--root", installRoot, "--no-user", "--keyring", keyPublic).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "signed by the release key") {
		t.Fatalf("install.sh --root: %v\n%s", err, out)
	}
	agentBin := filepath.Join(installRoot, "usr/local/bin/dtk-agent")
	ctlBin := filepath.Join(installRoot, "usr/local/bin/dtkctl")
	config := filepath.Join(installRoot, "etc/dtk/agent.hcl") // the installed default; flags override it
	if out, _ := exec.Command(ctlBin, "version").Output(); !strings.HasPrefix(string(out), "dtkctl "+version+" (") {
		t.Fatalf("installed dtkctl version: %q", out)
	}
	phase("install", start)

	// --- 2. A container image from busybox-static, saved into a module
	// folder, then removed from local storage.
	start = time.Now()
	pm := newPodman(t, root)
	suffix := fmt.Sprintf("%04x", rand.Uint32()&0xffff)
	ref := "localhost/dtk-airgap-" + suffix + ":1"
	service := "airgap-" + suffix
	containers := []string{"dtk-" + service + "-one-box", "dtk-" + service + "-two-box"}
	t.Cleanup(func() {
		for _, c := range containers {
			pm.run("rm", "-f", "-t", "0", c)
		}
		pm.run("rmi", "-f", ref)
	})
	moduleDir := filepath.Join(root, "module")
	os.MkdirAll(filepath.Join(moduleDir, "images"), 0o755)
	pm.must("import", busyboxRootfs(t, root), ref)
	pm.must("save", "-o", filepath.Join(moduleDir, "images", "box.tar"), ref)
	pm.must("rmi", ref)
	if _, err := pm.run("image", "exists", ref); err == nil {
		t.Fatal("the image is still in local storage")
	}
	writeModule(t, moduleDir, ref)
	phase("image", start)

	// --- 3. A source cluster takes the module; dtkctl bundle export writes
	// it to one file. Then the source and the module folder go away: only
	// the file crosses the gap.
	start = time.Now()
	const srcIP, gapIP, aIP, bIP = "127.0.0.70", "127.0.0.71", "127.0.0.72", "127.0.0.73"
	srcAddr, gapAddr := srcIP+":7070", gapIP+":7070"
	src := startBin(t, "src-coord", agentBin, nil, "run", "--config", config, "--name", "src-coord", "--coordinator", "--no-agent",
		"--data-dir", filepath.Join(root, "src-coord"), "--serf-addr", srcIP+":7946")
	waitLeader(t, srcAddr)
	ctlAt(t, ctlBin, srcAddr, 0, "module", "push", moduleDir)
	bundleFile := filepath.Join(root, "carry", "airgap.dtkbundle")
	os.MkdirAll(filepath.Dir(bundleFile), 0o755)
	out := ctlAt(t, ctlBin, srcAddr, 0, "bundle", "export", bundleFile, "airgap")
	if !strings.Contains(out, "exported airgap@1.0.0") {
		t.Fatalf("export output:\n%s", out)
	}
	src.stop(syscall.SIGTERM)
	os.RemoveAll(moduleDir)
	phase("export", start)
	if fi, err := os.Stat(bundleFile); err == nil {
		t.Logf("bundle %s: %d bytes", filepath.Base(bundleFile), fi.Size())
	}

	// --- 4. The air-gapped cluster: a coordinator and two agents, from
	// the installed binaries; any HTTP(S) a registry pull would use goes
	// to a closed loopback port.
	noRegistry := []string{"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9"}
	startBin(t, "gap-coord", agentBin, nil, "run", "--config", config, "--name", "gap-coord", "--coordinator", "--no-agent",
		"--data-dir", filepath.Join(root, "gap-coord"), "--serf-addr", gapIP+":7946")
	waitLeader(t, gapAddr)
	join := "--join=" + gapIP + ":7946"
	for _, a := range []struct{ name, ip, slot string }{{"gap-a", aIP, "one"}, {"gap-b", bIP, "two"}} {
		startBin(t, a.name, agentBin, noRegistry, "run", "--config", config, "--name", a.name, "--data-dir", filepath.Join(root, a.name),
			"--serf-addr", a.ip+":7946", join, "--label", "role=box", "--label", "slot="+a.slot)
	}

	start = time.Now()
	// A damaged copy is refused, nothing imported.
	data, err := os.ReadFile(bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(root, "carry", "damaged.dtkbundle")
	os.WriteFile(damaged, data[:len(data)/2], 0o644)
	if _, errOut, code := ctlRun(t, ctlBin, gapAddr, "bundle", "import", damaged); code != 2 || !strings.Contains(errOut, "truncated") {
		t.Fatalf("truncated bundle: exit %d\n%s", code, errOut)
	}
	out = ctlAt(t, ctlBin, gapAddr, 0, "bundle", "import", bundleFile)
	if !strings.Contains(out, "imported airgap@1.0.0") {
		t.Fatalf("import output:\n%s", out)
	}
	phase("import", start)
	if out := ctlAt(t, ctlBin, gapAddr, 0, "bundle", "import", bundleFile); !strings.Contains(out, "0 imported, 1 already present") {
		t.Fatalf("re-import output:\n%s", out)
	}

	waitFor(t, 60*time.Second, "both agents registered", func() bool {
		_, _, code := ctlRun(t, ctlBin, gapAddr, "node", "list")
		if code != 0 {
			return false
		}
		var nodes []struct {
			Name, Status string
		}
		o, _, _ := ctlRun(t, ctlBin, gapAddr, "node", "list", "--json")
		json.Unmarshal([]byte(o), &nodes)
		up := 0
		for _, n := range nodes {
			if (n.Name == "gap-a" || n.Name == "gap-b") && n.Status == "up" {
				up++
			}
		}
		return up == 2
	})

	// --- 5. Deploy the container on both agents.
	start = time.Now()
	ctlAt(t, ctlBin, gapAddr, 0, "service", "stage", service, "--template", "airgap/pair")
	ctlAt(t, ctlBin, gapAddr, 0, "service", "deploy", service, "--wait", "--timeout", "3m")
	phase("deploy", start)
	st := getStatusAt(t, ctlBin, gapAddr, service)
	if st.State != "converged" {
		t.Fatalf("service state %s, want converged: %+v", st.State, st)
	}
	steps := 0
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			steps++
			if s.State != "ok" {
				t.Errorf("step %s/%s on %s: %s", s.Instance, s.Action, n.Name, s.State)
			}
		}
	}
	if steps != 2 {
		t.Fatalf("%d steps, want 2: %+v", steps, st)
	}
	running := pm.dtkContainers(service)
	for _, c := range containers {
		info, ok := running[c]
		if !ok || info.State != "running" {
			t.Fatalf("container %s not running; dtk's containers: %+v", c, running)
		}
		if info.Labels["dtk.config"] == "" || !strings.HasPrefix(info.Labels["dtk.step"], service+"/") {
			t.Errorf("container %s lacks dtk's labels: %v", c, info.Labels)
		}
		if logs, _ := pm.run("logs", c); !strings.Contains(logs, "hi") {
			t.Errorf("container %s logs %q, want hi", c, logs)
		}
		if net, _ := pm.run("container", "inspect", "--format", "{{.HostConfig.NetworkMode}}", c); strings.TrimSpace(net) != "none" {
			t.Errorf("container %s network %q, want none", c, net)
		}
	}
	if _, err := pm.run("image", "exists", ref); err != nil {
		t.Error("the image was not loaded from the module's tarball")
	}

	// --- 6. Delete: the containers are gone.
	start = time.Now()
	ctlAt(t, ctlBin, gapAddr, 0, "service", "delete", service, "--wait", "--timeout", "2m")
	phase("delete", start)
	for _, c := range containers {
		if _, err := pm.run("container", "exists", c); err == nil {
			t.Errorf("container %s still exists after delete", c)
		}
	}
	if left := pm.dtkContainers(service); len(left) != 0 {
		t.Errorf("containers left: %+v", left)
	}
}

// writeModule writes a module whose template runs the image on two nodes.
func writeModule(t *testing.T, dir, ref string) {
	t.Helper()
	hcl := fmt.Sprintf(`module {
  name    = "airgap"
  version = "1.0.0"
}

component "box" {
  attribute "image" {
    type    = string
    default = %q
  }
  attribute "image_archive" {
    type    = string
    default = "images/box.tar"
  }
  attribute "command" {
    type    = list(string)
    default = ["sh", "-c", "trap 'exit 0' TERM; echo hi; sleep 3600 & wait"]
  }
  attribute "network" {
    type    = string
    default = "none"
  }
  attribute "stop_timeout" {
    type    = number
    default = 5
  }
  create { kind = "container" }
  delete { kind = "container" }
}

template "pair" {
  node "one" {
    labels = { role = "box", slot = "one" }
    component "box" "box" {}
  }
  node "two" {
    labels = { role = "box", slot = "two" }
    component "box" "box" {}
  }
}
`, ref)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
}

// busyboxRootfs writes a root folder holding a static busybox as a tar.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sh", "sleep", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", n)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "rootfs.tar")
	if b, err := exec.Command("tar", "-C", rootfs, "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	return out
}

// podman runs podman the way the container runner does on these machines
// (runc, cgroupfs, no default ulimits).
type podman struct {
	t   *testing.T
	env []string
}

func newPodman(t *testing.T, dir string) *podman {
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := os.Environ()
	if os.Getenv("CONTAINERS_CONF") == "" {
		env = append(env, "CONTAINERS_CONF="+conf)
	}
	return &podman{t: t, env: env}
}

func (p *podman) run(args ...string) (string, error) {
	cmd := exec.Command("podman", append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...)
	cmd.Env = p.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

type podmanContainer struct {
	Names  []string
	State  string
	Labels map[string]string
}

// dtkContainers lists, by name, every container (running or not) that
// dtk labelled for service.
func (p *podman) dtkContainers(service string) map[string]podmanContainer {
	p.t.Helper()
	out := p.must("ps", "--all", "--filter", "label=dtk.step", "--format", "json")
	var list []podmanContainer
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		p.t.Fatalf("podman ps: %v\n%s", err, out)
	}
	m := map[string]podmanContainer{}
	for _, c := range list {
		if strings.HasPrefix(c.Labels["dtk.step"], service+"/") && len(c.Names) > 0 {
			m[c.Names[0]] = c
		}
	}
	return m
}

// startBin starts an installed binary with args (and extra environment)
// and stops it at cleanup.
func startBin(t *testing.T, name, binary string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	if len(args) > 0 && args[0] == "run" {
		args = append([]string{"run"}, secureArgs(t, name, args[1:])...)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.Output())
		}
	})
	return p
}

// ctlRun runs an installed dtkctl against addr.
func ctlRun(t *testing.T, ctlBin, addr string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctlBin, append(ctlTLSArgs(addr), args...)...)
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

// ctlAt runs an installed dtkctl and fails the test unless it exits with
// code.
func ctlAt(t *testing.T, ctlBin, addr string, code int, args ...string) string {
	t.Helper()
	out, errOut, got := ctlRun(t, ctlBin, addr, args...)
	if got != code {
		t.Fatalf("dtkctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out, errOut)
	}
	return out
}

func getStatusAt(t *testing.T, ctlBin, addr, name string) status {
	t.Helper()
	out := ctlAt(t, ctlBin, addr, 0, "service", "status", name, "--json")
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return st
}

// untarGz unpacks a .tar.gz of regular files and folders into dir.
func untarGz(t *testing.T, path, dir string) {
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
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("unsafe entry %q", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(target), 0o755)
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}

// releaseKey writes a throwaway release key into dir: the secret key to
// sign with and the binary public key install.sh checks with.
func releaseKey(t *testing.T, dir string) (secret, public string) {
	t.Helper()
	sec, s, err := packaging.GenerateKey("dtk e2e release key", "e2e@dtk.invalid", 2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublicKey(false)
	if err != nil {
		t.Fatal(err)
	}
	secret, public = filepath.Join(dir, "release-key.asc"), filepath.Join(dir, "release-key.gpg")
	if err := os.WriteFile(secret, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return secret, public
}
