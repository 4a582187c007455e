package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/bundle/bundletest"
	"github.com/dtkhq/dtk/internal/modsource/ocitest"
)

// tamperBundle rewrites a bundle as someone who changed a module would:
// one file inside the first module's archive changed, and the archive's
// digest and size fixed in the manifest, so that the bundle is whole and
// only its signatures can tell.
func tamperBundle(t *testing.T, b []byte, file string) []byte {
	t.Helper()
	return bundletest.Rewrite(t, b, func(names []string, data map[string][]byte) []string {
		var m map[string]any
		if err := json.Unmarshal(data[bundle.ManifestName], &m); err != nil {
			t.Fatal(err)
		}
		e := m["modules"].([]any)[0].(map[string]any)
		old := bundle.BlobName(e["digest"].(string))
		changed := changeInArchive(t, data[old], file)
		digest := archive.Digest(changed)
		e["digest"], e["size"] = digest, len(changed)
		data[bundle.BlobName(digest)] = changed
		mb, _ := json.MarshalIndent(m, "", "  ")
		data[bundle.ManifestName] = mb
		for i, n := range names {
			if n == old {
				names[i] = bundle.BlobName(digest)
			}
		}
		return names
	})
}

// changeInArchive appends a line to one file of a module archive.
func changeInArchive(t *testing.T, tgz []byte, file string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		if h.Name == file {
			c = append(c, []byte("\n# changed after signing\n")...)
			h.Size, found = int64(len(c)), true
		}
		tw.WriteHeader(h)
		tw.Write(c)
	}
	tw.Close()
	zw.Close()
	if !found {
		t.Fatalf("no %s in the archive", file)
	}
	return out.Bytes()
}

// A coordinator that requires signatures (--modules-trusted-key,
// --modules-require-signature), with real processes: a module signed with
// the trusted key is accepted and listed with its signer; an unsigned one
// and one re-signed by a stranger are refused (exit 2, 403 reason); a
// bundle exported from an ordinary coordinator with --sign-key imports and
// lists its signer; the same bundle with a module changed (digests fixed
// up) is refused (422) and nothing of it is recorded.
func TestE2E_Signing_RequireSignature(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const sigIP, srcIP = "127.0.0.130", "127.0.0.131"
	sigAddr, srcAddr := sigIP+":7070", srcIP+":7070"

	keys := filepath.Join(root, "keys")
	os.MkdirAll(keys, 0o700)
	alice, mallory := filepath.Join(keys, "alice"), filepath.Join(keys, "mallory")
	out := mustCtl(t, sigAddr, "key", "create", "--out", alice, "--signer", "Alice <alice@example.com>")
	aliceID := strings.Fields(out)[1]
	mustCtl(t, sigAddr, "key", "create", "--out", mallory, "--signer", "alice") // a stranger naming herself alice
	malloryID := strings.Fields(mustCtl(t, sigAddr, "key", "show", mallory+".pub"))[1]

	sig := startAgent(t, "sig", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "sig"), "--serf-addr", sigIP+":7946",
		"--modules-trusted-key", alice+".pub", "--modules-require-signature")
	startAgent(t, "src", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "src"), "--serf-addr", srcIP+":7946")
	waitLeader(t, sigAddr)
	waitLeader(t, srcAddr)
	if !strings.Contains(sig.Output(), `msg="module signatures checked"`) {
		t.Errorf("the coordinator does not say it checks signatures:\n%s", sig.Output())
	}

	// Signed with the trusted key: accepted, listed with its signer.
	web := limitModule(t, "web", "1.0.0", "", map[string]int64{"assets/site.bin": 64 << 10})
	mustCtl(t, sigAddr, "module", "sign", web, "--key", alice+".key")
	mustCtl(t, sigAddr, "module", "verify", web, "--trusted", alice+".pub")
	if out := mustCtl(t, sigAddr, "module", "push", web); !strings.Contains(out, "pushed web@1.0.0") {
		t.Fatalf("push: %s", out)
	}
	list := mustCtl(t, sigAddr, "module", "list")
	if !strings.Contains(list, "SIGNED BY") || !strings.Contains(list, "Alice <alice@example.com> ("+aliceID+")") {
		t.Errorf("module list:\n%s", list)
	}
	var mods []struct {
		Name, Version string
		KeyID         string `json:"key_id"`
		SignedBy      string `json:"signed_by"`
	}
	json.Unmarshal([]byte(mustCtl(t, sigAddr, "module", "list", "--json")), &mods)
	if len(mods) != 1 || mods[0].KeyID != aliceID || mods[0].SignedBy != "Alice <alice@example.com>" {
		t.Errorf("module list --json: %+v", mods)
	}

	// Unsigned: refused.
	api := limitModule(t, "api", "1.0.0", "", nil)
	_, errOut, code := ctl(t, sigAddr, "module", "push", api)
	if code != 2 || !strings.Contains(errOut, "module api@1.0.0 is not signed, and this cluster accepts only signed modules (modules.require_signature)") {
		t.Errorf("unsigned push: exit %d\n%s", code, errOut)
	}
	// Re-signed by a stranger (who claims to be alice): refused by key.
	mustCtl(t, sigAddr, "module", "sign", web, "--key", mallory+".key")
	_, errOut, code = ctl(t, sigAddr, "module", "push", web)
	if code != 2 || !strings.Contains(errOut, "module web@1.0.0 is signed by key "+malloryID+" (alice), which this cluster does not trust (modules.trusted_keys)") {
		t.Errorf("stranger's push: exit %d\n%s", code, errOut)
	}

	// A bundle signed on export from an ordinary coordinator.
	shop := limitModule(t, "shop", "2.0.0", "", map[string]int64{"assets/app.bin": 128 << 10})
	mustCtl(t, srcAddr, "module", "push", shop)
	mustCtl(t, srcAddr, "module", "push", api)
	file := filepath.Join(root, "signed.dtkb")
	out = mustCtl(t, srcAddr, "bundle", "export", file, "shop", "api", "--sign-key", alice+".key")
	if !strings.Contains(out, "signed by key "+aliceID+" (Alice <alice@example.com>)") {
		t.Errorf("export:\n%s", out)
	}
	mustCtl(t, sigAddr, "bundle", "inspect", file, "--trusted", alice+".pub")

	// Changed after signing (digests fixed up): refused, nothing kept.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(root, "tampered.dtkb")
	os.WriteFile(tampered, tamperBundle(t, b, "main.hcl"), 0o644)
	mustCtl(t, sigAddr, "bundle", "inspect", tampered) // whole as a bundle: every digest matches
	_, errOut, code = ctl(t, sigAddr, "bundle", "import", tampered)
	if code != 2 || !strings.Contains(errOut, "the bundle's signature does not verify with key "+aliceID+" (Alice <alice@example.com>): its manifest was changed after it was signed") ||
		!strings.Contains(errOut, "nothing was imported") {
		t.Errorf("tampered import: exit %d\n%s", code, errOut)
	}
	if list := mustCtl(t, sigAddr, "module", "list"); strings.Contains(list, "shop") {
		t.Errorf("the tampered bundle left modules:\n%s", list)
	}

	out = mustCtl(t, sigAddr, "bundle", "import", file)
	if !strings.Contains(out, "imported shop@2.0.0") || !strings.Contains(out, "imported api@1.0.0") {
		t.Errorf("import:\n%s", out)
	}
	list = mustCtl(t, sigAddr, "module", "list")
	if strings.Count(list, "Alice <alice@example.com> ("+aliceID+")") != 3 {
		t.Errorf("module list after the import:\n%s", list)
	}
	if !strings.Contains(sig.Output(), `msg="signature refused"`) {
		t.Errorf("refusals not logged:\n%s", sig.Output())
	}
}

// A module's signature travels with it through every transport: signed
// once, published to an OCI registry and committed to git, it is accepted
// from both by a coordinator that requires signatures and listed with its
// signer; the same module changed after signing and published is refused
// (422) when pushed from the registry.
func TestE2E_Signing_ThroughOCIAndGit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "git", "git")
	root := t.TempDir()
	const coordIP, regIP = "127.0.0.132", "127.0.0.133"
	addr := coordIP + ":7070"
	reg := ocitest.Start(t, regIP, ocitest.Options{})
	alice := filepath.Join(root, "alice")
	mustCtl(t, addr, "key", "create", "--out", alice, "--signer", "alice")
	aliceID := strings.Fields(mustCtl(t, addr, "key", "show", alice+".pub"))[1]
	startAgent(t, "sig-oci", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946",
		"--modules-trusted-key", alice+".pub", "--modules-require-signature")

	// One repository holding two signed versions: 1.0.0 goes through the
	// registry, 1.1.0 through git.
	repo := filepath.Join(root, "repo")
	git := gitIn(t, repo, root)
	os.MkdirAll(repo, 0o755)
	git("init", "-q", "-b", "main")
	v1, v11 := filepath.Join(repo, "v1"), filepath.Join(repo, "v11")
	sharedModule(t, v1, "1.0.0")
	sharedModule(t, v11, "1.1.0")
	for _, d := range []string{v1, v11} {
		os.Remove(filepath.Join(d, "dtk.sig")) // sharedModule's stand-in
		mustCtl(t, addr, "module", "sign", d, "--key", alice+".key")
	}
	git("add", "-A")
	git("commit", "-q", "-m", "signed modules")
	git("tag", "v1.1.0")

	repoRef := "oci://" + reg.Host + "/dtk/shared"
	login := []string{"DOCKER_CONFIG=" + reg.DockerConfig}
	mustCtlIO(t, addr, login, "", "module", "publish", v1, repoRef, "--registry-ca", reg.CAFile)
	waitLeader(t, addr)
	out, _ := mustCtlIO(t, addr, login, "", "module", "push", repoRef+":1.0.0", "--registry-ca", reg.CAFile)
	if !strings.Contains(out, "pushed shared@1.0.0") {
		t.Fatalf("push from the registry:\n%s", out)
	}
	out = mustCtl(t, addr, "module", "push", "git::file://"+repo+"//v11?ref=v1.1.0")
	if !strings.Contains(out, "pushed shared@1.1.0") {
		t.Fatalf("push from git:\n%s", out)
	}
	if list := mustCtl(t, addr, "module", "list"); strings.Count(list, "alice ("+aliceID+")") != 2 {
		t.Errorf("module list:\n%s", list)
	}

	// Changed after signing, published anyway (publishing checks the
	// module, not its signature): the coordinator refuses it.
	os.WriteFile(filepath.Join(v1, "main.hcl"), []byte(strings.Replace(readFile(t, filepath.Join(v1, "main.hcl")), "1.0.0", "1.2.0", 1)), 0o644)
	mustCtl(t, addr, "module", "sign", v1, "--key", alice+".key")
	os.WriteFile(filepath.Join(v1, "scripts", "note.sh"), []byte("#!/bin/sh\necho changed\n"), 0o755)
	mustCtlIO(t, addr, login, "", "module", "publish", v1, repoRef, "--registry-ca", reg.CAFile)
	_, errOut, code := ctlIO(t, addr, login, "", "module", "push", repoRef+":1.2.0", "--registry-ca", reg.CAFile)
	if code != 2 || !strings.Contains(errOut, "module shared@1.2.0: its signature does not hold: the files differ from what key "+aliceID+" (alice) signed: changed scripts/note.sh") {
		t.Errorf("push of a module changed after signing: exit %d\n%s", code, errOut)
	}

	// Re-signed by a stranger and published to the same registry: refused.
	mallory := filepath.Join(root, "mallory")
	mustCtl(t, addr, "key", "create", "--out", mallory, "--signer", "mallory")
	os.WriteFile(filepath.Join(v1, "main.hcl"), []byte(strings.Replace(readFile(t, filepath.Join(v1, "main.hcl")), "1.2.0", "1.3.0", 1)), 0o644)
	mustCtl(t, addr, "module", "sign", v1, "--key", mallory+".key")
	mustCtlIO(t, addr, login, "", "module", "publish", v1, repoRef, "--registry-ca", reg.CAFile)
	_, errOut, code = ctlIO(t, addr, login, "", "module", "push", repoRef+":1.3.0", "--registry-ca", reg.CAFile)
	if code == 0 || !strings.Contains(errOut, "(mallory), which this cluster does not trust") {
		t.Errorf("push of a module signed by a stranger: exit %d\n%s", code, errOut)
	}
	// And unsigned: refused too.
	os.Remove(filepath.Join(v1, "dtk.sig"))
	os.WriteFile(filepath.Join(v1, "main.hcl"), []byte(strings.Replace(readFile(t, filepath.Join(v1, "main.hcl")), "1.3.0", "1.4.0", 1)), 0o644)
	mustCtlIO(t, addr, login, "", "module", "publish", v1, repoRef, "--registry-ca", reg.CAFile)
	_, errOut, code = ctlIO(t, addr, login, "", "module", "push", repoRef+":1.4.0", "--registry-ca", reg.CAFile)
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "unsigned") && !strings.Contains(errOut, "not signed") {
		t.Errorf("push of an unsigned module: exit %d\n%s", code, errOut)
	}
	if list := mustCtl(t, addr, "module", "list"); strings.Contains(list, "1.3.0") || strings.Contains(list, "1.4.0") {
		t.Errorf("a refused module was recorded:\n%s", list)
	}
}
