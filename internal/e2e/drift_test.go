package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// assetsModule assembles testdata/assets (see its README.md) in dir: its
// own files and a busybox image saved as images/box.tar. The Puppet
// modules ntp and stdlib are not shipped: the node has them where Debian's
// packages put them. It returns the image reference (removed from local
// storage at cleanup).
// assetsSetup skips unless root (podman here runs as root only, and the
// ntp class sets owner root), and makes a work folder, its podman, the
// assets module in root/module (and its image: ref), and the cleanup of
// service's containers.
func assetsSetup(t *testing.T, service string) (root string, pm *podman, moduleDir, ref string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("podman here runs as root only, and the ntp class sets owner root: run as root")
	}
	root = t.TempDir()
	pm = newPodman(t, root)
	moduleDir = filepath.Join(root, "module")
	ref = assetsModule(t, moduleDir, pm)
	t.Cleanup(func() {
		for name := range pm.dtkContainers(service) {
			pm.run("rm", "-f", "-t", "0", name)
		}
	})
	return root, pm, moduleDir, ref
}

func assetsModule(t *testing.T, dir string, pm *podman) string {
	t.Helper()
	if out, err := exec.Command("cp", "-r", "testdata/assets/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	ref := fmt.Sprintf("localhost/dtk-assets-%04x:1", rand.Uint32()&0xffff)
	t.Cleanup(func() { pm.run("rmi", "-f", ref) })
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	pm.must("import", busyboxRootfs(t, t.TempDir()), ref)
	pm.must("save", "-o", filepath.Join(dir, "images", "box.tar"), ref)
	return ref
}

// One coordinator and one agent reconciling every 2 s: the Debian-packaged
// puppetlabs-ntp, wrapped by class with a noop check, and a container with
// no check. A hand edit of ntp.conf is found by puppet --noop and repaired;
// a container stopped behind the agent's back is run again; status says
// drift repaired for both, with what the check found.
func TestE2E_Drift_NoopCheckRepairsPuppetAndContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "puppet", "puppet")
	needTool(t, "podman", "podman runc")
	needTool(t, "runc", "runc")
	needTool(t, "busybox", "busybox-static")
	for _, m := range []string{"ntp", "stdlib"} {
		if _, err := os.Stat("/usr/share/puppet/modules/" + m + "/manifests/init.pp"); err != nil {
			needTool(t, "/usr/share/puppet/modules/"+m+"/manifests/init.pp", "puppet-module-puppetlabs-"+m)
		}
	}
	const service = "drift"
	root, pm, moduleDir, ref := assetsSetup(t, service)

	const coordIP, agentIP = "127.0.1.20", "127.0.1.21"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	startAgent(t, "n1", "--data-dir", filepath.Join(root, "n1"), "--serf-addr", agentIP+":7946", "--join", coordIP+":7946",
		"--reconcile", "2s")
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return nodeStatus(out, "n1") == "up"
	})
	conf := filepath.Join(root, "etc", "ntp.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, addr, "module", "push", moduleDir)
	mustCtl(t, addr, "service", "stage", service, "--template", "assets/site", "--set", "ntp_config="+conf, "--set", "image="+ref)
	mustCtl(t, addr, "service", "deploy", service, "--wait")
	managed, err := os.ReadFile(conf)
	if err != nil || !strings.Contains(string(managed), "Managed by puppet") {
		t.Fatalf("ntp.conf after the deploy: %v\n%s", err, managed)
	}
	running := func() (string, bool) {
		for name, c := range pm.dtkContainers(service) {
			return name, c.State == "running"
		}
		return "", false
	}
	box, up := running()
	if !up {
		t.Fatalf("the container is not running after the deploy: %+v", pm.dtkContainers(service))
	}

	// Puppet: the file edited behind the agent's back.
	if err := os.WriteFile(conf, append(managed, "server 203.0.113.1 # by hand\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	found := "n/ntp create drift repaired: the check found:\n    /Stage[main]/Ntp::Config/File[" + conf + "]/content: current_value '{"
	var status string
	waitFor(t, 4*time.Minute, "the ntp drift repaired and reported", func() bool {
		status, _, _ = ctl(t, addr, "service", "status", service)
		b, _ := os.ReadFile(conf)
		return string(b) == string(managed) && strings.Contains(status, found)
	})
	if !strings.Contains(status, "(noop)") || !strings.Contains(status, "drift repaired") {
		t.Fatalf("status:\n%s", status)
	}

	// The container stopped behind the agent's back.
	pm.must("stop", "-t", "0", box)
	want := "n/box create drift repaired: the check found:\n    would replace container " + box + ": it is not running"
	waitFor(t, 4*time.Minute, "the container running again and reported", func() bool {
		status, _, _ = ctl(t, addr, "service", "status", service)
		_, up := running()
		return up && strings.Contains(status, want)
	})
	t.Logf("status:\n%s", status)
}
