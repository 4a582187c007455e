package e2e

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A sensitive input given with --set-file reaches the step that needs it
// and nowhere else in clear: not in any answer or CLI output, not in the
// coordinator's raft.db or snapshots, not in an operator snapshot, not in
// the agent's data dir.
func TestE2E_Secrets_NothingInClear(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, agentIP = "127.0.0.176", "127.0.0.177"
	addr := coordIP + ":7070"
	startAgent(t, "c", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "c"), "--serf-addr", coordIP+":7946")
	startAgent(t, "n", "--data-dir", filepath.Join(root, "n"), "--serf-addr", agentIP+":7946", "--join", coordIP+":7946", "--label", "zone=a")
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "the node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Contains(out, `"status": "up"`)
	})
	const secretValue = "Pa55-e2e-Zq81x-only-here"
	pwFile := filepath.Join(root, "pw")
	os.WriteFile(pwFile, []byte(secretValue+"\n"), 0o600)
	mustCtl(t, addr, "module", "push", "testdata/secrets")
	outs := []string{
		mustCtl(t, addr, "service", "stage", "s", "--template", "secrets/app", "--set-file", "db_password="+pwFile),
		mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "2m"),
		mustCtl(t, addr, "service", "status", "s", "--json"),
		mustCtl(t, addr, "service", "plan", "s"),
		mustCtl(t, addr, "service", "logs", "s"),
	}
	for _, o := range outs {
		if strings.Contains(o, secretValue) {
			t.Errorf("the secret is in CLI output:\n%s", o)
		}
	}
	if !strings.Contains(outs[4], "logged in as app") {
		t.Errorf("logs: %s", outs[4])
	}
	// The step got the value: it recorded a digest of it.
	sum := sha256.Sum256([]byte(secretValue))
	var got []byte
	filepath.Walk(filepath.Join(root, "n"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "login-app" {
			got, _ = os.ReadFile(p)
		}
		return nil
	})
	if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:])[:16] {
		t.Fatalf("the step did not receive the value (digest %q)", got)
	}
	snap := filepath.Join(root, "snap")
	mustCtl(t, addr, "operator", "snapshot", "save", snap)
	f, err := os.Open(snap)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	f.Close()
	if strings.Contains(string(plain), secretValue) {
		t.Error("the operator snapshot holds the secret in clear")
	}
	// Nothing at rest: every file of the coordinator and the agent.
	for _, dir := range []string{filepath.Join(root, "c"), filepath.Join(root, "n")} {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), secretValue) {
					t.Errorf("%s holds the secret in clear", p)
				}
			}
			return nil
		})
	}
}
