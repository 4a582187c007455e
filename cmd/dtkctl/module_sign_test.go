package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newKey runs key create in a temporary folder and returns NAME (the
// files are NAME.key and NAME.pub).
func newKey(t *testing.T, signer string) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "k")
	r := runCLIEnv(t, noCoordinator, "key", "create", "--out", base, "--signer", signer)
	r.check(t, exitOK)
	return base
}

func keyID(t *testing.T, file string) string {
	t.Helper()
	r := runCLIEnv(t, noCoordinator, "key", "show", file, "--json")
	r.check(t, exitOK)
	var k keyResult
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil {
		t.Fatal(err)
	}
	return k.KeyID
}

func TestKeyCreate_FilesModesAndNoOverwrite(t *testing.T) {
	base := filepath.Join(t.TempDir(), "alice")
	r := runCLIEnv(t, noCoordinator, "key", "create", "--out", base, "--signer", "Alice <alice@example.com>")
	r.check(t, exitOK)
	for p, mode := range map[string]os.FileMode{base + ".key": 0o600, base + ".pub": 0o644} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", p, err, fi.Mode().Perm(), mode)
		}
	}
	id := keyID(t, base+".pub")
	if len(id) != 16 || keyID(t, base+".key") != id || !strings.HasPrefix(r.stdout, "key "+id+" (Alice <alice@example.com>)\n") {
		t.Errorf("key id %q; stdout:\n%s", id, r.stdout)
	}
	r = runCLIEnv(t, noCoordinator, "key", "create", "--out", base)
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, base+".key exists: choose another --out, or --force") {
		t.Errorf("stderr %q", r.stderr)
	}
	runCLIEnv(t, noCoordinator, "key", "create", "--out", base, "--force").check(t, exitOK)
	if keyID(t, base+".pub") == id {
		t.Error("--force kept the old key")
	}
}

// Sign, verify, and every way verification fails, offline: exit 1 and the
// reason.
func TestModuleSignVerify(t *testing.T) {
	alice, mallory := newKey(t, "alice"), newKey(t, "mallory")
	dir := writeModule(t, map[string]string{"main.hcl": okModule, "files/a.txt": "a", ".git/HEAD": "ref"})

	r := runCLIEnv(t, noCoordinator, "module", "verify", dir, "--trusted", alice+".pub")
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "tiny@0.1.0 is not signed (no dtk.sig)") {
		t.Errorf("unsigned: %s", r.stderr)
	}

	r = runCLIEnv(t, noCoordinator, "module", "sign", dir, "--key", alice+".key")
	r.check(t, exitOK)
	id := keyID(t, alice+".pub")
	if want := "signed tiny@0.1.0 with key " + id + " (alice): 2 files; wrote " + filepath.Join(dir, "dtk.sig") + "\n"; r.stdout != want {
		t.Errorf("sign: %q, want %q", r.stdout, want)
	}
	r = runCLIEnv(t, noCoordinator, "module", "verify", dir, "--trusted", mallory+".pub", "--trusted", alice+".pub")
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "ok: tiny@0.1.0 is signed by key "+id+" (alice) (") || !strings.HasSuffix(r.stdout, "); its 2 files match\n") {
		t.Errorf("verify: %q", r.stdout)
	}

	r = runCLIEnv(t, noCoordinator, "module", "verify", dir, "--trusted", mallory+".pub")
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "is signed by key "+id+" (alice), which is not a trusted key") {
		t.Errorf("wrong key: %s", r.stderr)
	}

	os.WriteFile(filepath.Join(dir, "files", "b.txt"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(dir, "files", "a.txt"), []byte("A"), 0o644)
	r = runCLIEnv(t, noCoordinator, "module", "verify", dir, "--trusted", alice+".pub", "--json")
	r.check(t, exitFailed)
	var res signResult
	json.Unmarshal([]byte(r.stdout), &res)
	if res.Valid || res.KeyID != id || !strings.Contains(res.Error, "changed files/a.txt; added files/b.txt") {
		t.Errorf("tampered: %+v", res)
	}

	// Signing again with another key replaces the signature.
	r = runCLIEnv(t, noCoordinator, "module", "sign", dir, "--key", mallory+".key", "--signer", "Mallory M.")
	r.check(t, exitOK)
	if !strings.Contains(r.stderr, "replaced the signature of key "+id) {
		t.Errorf("re-sign: %s", r.stderr)
	}

	// A private key open to others is refused.
	os.Chmod(alice+".key", 0o644)
	r = runCLIEnv(t, noCoordinator, "module", "sign", dir, "--key", alice+".key")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("open key: %s", r.stderr)
	}
	// A public key is not a signing key, nor a private one a trusted key.
	runCLIEnv(t, noCoordinator, "module", "sign", dir, "--key", alice+".pub").check(t, exitUsage)
	r = runCLIEnv(t, noCoordinator, "module", "verify", dir, "--trusted", mallory+".key")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "this is a private key: give only the public key") {
		t.Errorf("private key as trusted: %s", r.stderr)
	}
}

// module push warns, before it uploads, when dtk.sig no longer matches
// the folder.
func TestModulePush_WarnsOfAStaleSignature(t *testing.T) {
	k := newKey(t, "alice")
	dir := writeModule(t, map[string]string{"main.hcl": okModule})
	runCLIEnv(t, noCoordinator, "module", "sign", dir, "--key", k+".key").check(t, exitOK)
	os.WriteFile(filepath.Join(dir, "extra.sh"), []byte("echo\n"), 0o644)
	f := newFake(t)
	f.handle("POST /v1/modules", apiError(403, "module tiny@0.1.0: its signature does not hold"))
	r := runCLI(t, f.addr(), "module", "push", dir)
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "warning: dtk.sig no longer matches the files (added extra.sh): coordinators that check signatures refuse it") {
		t.Errorf("stderr %q", r.stderr)
	}
}
