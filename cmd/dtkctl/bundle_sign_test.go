package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/signing"
)

// trustingCoord runs a coordinator that accepts only modules and bundles
// signed by the key in pubFile.
func trustingCoord(t *testing.T, pubFile string) string {
	t.Helper()
	keys, err := signing.LoadKeyring([]string{pubFile})
	if err != nil {
		t.Fatal(err)
	}
	s, err := coordinator.New(coordinator.Config{Name: "c2", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Fast: true,
		ModuleTrust: &coordinator.ModuleTrust{Keys: keys, Require: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s.HTTPAddr()
}

// export --sign-key signs the modules its key has not signed (new
// archives), keeps those it has, and signs the manifest; inspect and
// import --trusted check it all offline; a coordinator requiring that key
// imports it and lists the signer.
func TestBundleExport_SignKey_InspectImport(t *testing.T) {
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	src := realCoord(t)
	unsigned := moduleDir(t, "web", "1.0.0", "image")
	byAlice := moduleDir(t, "web", "1.1.0", "image")
	byBob := moduleDir(t, "api", "1.0.0", "image")
	runCLIEnv(t, noCoordinator, "module", "sign", byAlice, "--key", alice+".key").check(t, exitOK)
	runCLIEnv(t, noCoordinator, "module", "sign", byBob, "--key", bob+".key").check(t, exitOK)
	for _, d := range []string{unsigned, byAlice, byBob} {
		runCLI(t, src, "module", "push", d).check(t, exitOK)
	}
	before := moduleRefs(t, src)

	file := filepath.Join(t.TempDir(), "signed.dtkb")
	r := runCLI(t, src, "bundle", "export", file, "--sign-key", alice+".key")
	r.check(t, exitOK)
	aliceID, bobID := keyID(t, alice+".pub"), keyID(t, bob+".pub")
	for _, want := range []string{
		"signed web@1.0.0: its archive is now ",
		"signed already by this key: web@1.1.0\n",
		"signed api@1.0.0 (replacing the signature of key " + bobID + " (bob)): its archive is now ",
		"signed by key " + aliceID + " (alice)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("export output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "note: 2 modules signed here differ from the cluster's copies") {
		t.Errorf("stderr %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "exported web@1.1.0 ("+shortDigest(before["web@1.1.0"])+",") {
		t.Errorf("web@1.1.0 was not exported as it is:\n%s", r.stdout)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".dtkctl-export-*")); len(left) > 0 {
		t.Errorf("scratch left behind: %v", left)
	}

	r = runCLIEnv(t, noCoordinator, "bundle", "inspect", file, "--trusted", alice+".pub")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "signed by key "+aliceID+" (alice); every signature holds with the --trusted keys") ||
		strings.Count(r.stdout, "alice ("+aliceID+")") != 3 {
		t.Errorf("inspect --trusted:\n%s", r.stdout)
	}
	r = runCLIEnv(t, noCoordinator, "bundle", "inspect", file)
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "(not checked: give --trusted NAME.pub)") {
		t.Errorf("inspect:\n%s", r.stdout)
	}
	r = runCLIEnv(t, noCoordinator, "bundle", "inspect", file, "--trusted", bob+".pub")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "the bundle is signed by key "+aliceID+" (alice), which is not a trusted key") {
		t.Errorf("inspect --trusted bob:\n%s", r.stderr)
	}

	dst := trustingCoord(t, alice+".pub")
	r = runCLI(t, dst, "bundle", "import", file, "--trusted", bob+".pub")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "nothing was imported") {
		t.Errorf("import --trusted bob: %s", r.stderr)
	}
	runCLI(t, dst, "bundle", "import", file, "--trusted", alice+".pub").check(t, exitOK)
	r = runCLI(t, dst, "module", "list")
	r.check(t, exitOK)
	if strings.Count(r.stdout, "alice ("+aliceID+")") != 3 {
		t.Errorf("module list:\n%s", r.stdout)
	}

	// The unsigned export of the same modules is refused there.
	plain := filepath.Join(t.TempDir(), "plain.dtkb")
	runCLI(t, src, "bundle", "export", plain, "web@1.0.0").check(t, exitOK)
	r = runCLI(t, dst, "bundle", "import", plain)
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "the bundle is not signed, and this cluster accepts only signed bundles") {
		t.Errorf("unsigned import: %s", r.stderr)
	}
	if _, err := os.Stat(plain); err != nil {
		t.Fatal(err)
	}
}
