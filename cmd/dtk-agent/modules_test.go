package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dtkhq/dtk/internal/signing"
)

// writeKey writes a new public key file at path and returns its id.
func writeKey(t *testing.T, path, signer string) string {
	t.Helper()
	k, err := signing.GenerateKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, k.Public().MarshalPublic(), 0o644); err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// A coordinator reads its trusted module keys when it starts (a missing
// file stops it with exit 2) and again on every SIGHUP: a replaced key
// file takes effect, a damaged one changes nothing.
func TestRun_ModulesTrustedKeys_StartAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, "sig", net.IPv4(127, 0, 0, 134))
	keyFile := filepath.Join(dir, "team.pub")
	base := `name = "sig"
data_dir = "` + dir + `/data"
coordinator = true
no_agent = true
serf_addr = "127.0.0.134:7946"
http_addr = "127.0.0.134:0"
raft_addr = "127.0.0.134:0"
` + pki.hcl() + `
modules {
  trusted_keys      = ["` + keyFile + `"]
  require_signature = true
}
`
	path := writePrivate(t, "agent.hcl", base)

	code, _, stderr := runMain("run", "--config", path)
	if code != 2 || !strings.Contains(stderr, "modules.trusted_keys: trusted key: open "+keyFile+": no such file or directory") {
		t.Fatalf("missing key file: exit %d\n%s", code, stderr)
	}

	first := writeKey(t, keyFile, "team")
	p := startAgent(t, "run", "--config", path)
	waitOutput(t, p.out, `msg="module signatures checked" component=coordinator trusted_keys="`+first+` (`+keyFile+`)" require_signature=true`)
	waitOutput(t, p.out, "dtk-agent running")

	second := writeKey(t, keyFile, "team, rotated")
	p.signal(t, syscall.SIGHUP)
	waitOutput(t, p.out, `trusted_keys="`+second+` (`+keyFile+`)"`)

	os.WriteFile(keyFile, []byte("not a key"), 0o644)
	p.signal(t, syscall.SIGHUP)
	waitOutput(t, p.out, `msg="module signing keys not reloaded: keeping the running ones"`)
	if !strings.Contains(p.out.String(), "not a key file (dtkctl key create makes them)") {
		t.Errorf("no reason given:\n%s", p.out.String())
	}
	p.stop(t)
}
