package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle"
)

// testKey is a key made from a fixed seed, so that ids and signatures are
// the same on every run.
func testKey(seed byte, signer string) *PrivateKey {
	s := bytes.Repeat([]byte{seed}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(s)
	return &PrivateKey{key: priv, id: KeyID(priv.Public().(ed25519.PublicKey)), Signer: signer}
}

var signedAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func testFiles() map[string]string {
	return map[string]string{
		"main.hcl":        "sha256:" + strings.Repeat("a", 64),
		"scripts/run.sh":  "sha256:" + strings.Repeat("b", 64),
		"images/app.tar":  "sha256:" + strings.Repeat("c", 64),
		".config/x.json":  "sha256:" + strings.Repeat("d", 64),
		"templates/n.tpl": "sha256:" + strings.Repeat("e", 64),
	}
}

func TestKey_MarshalParse_RoundTrip(t *testing.T) {
	k, err := GenerateKey("Alice <alice@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	priv := k.MarshalPrivate()
	pub := k.Public().MarshalPublic()
	for _, want := range []string{"PRIVATE: keep it offline", "key id: " + k.ID(), "signer: Alice <alice@example.com>", "-----BEGIN PRIVATE KEY-----"} {
		if !strings.Contains(string(priv), want) {
			t.Errorf("private key file lacks %q:\n%s", want, priv)
		}
	}
	k2, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID() != k.ID() || p2.ID() != k.ID() || k2.Signer != k.Signer || p2.Signer != k.Signer || len(k.ID()) != KeyIDLen {
		t.Errorf("ids %s %s %s, signers %q %q", k.ID(), k2.ID(), p2.ID(), k2.Signer, p2.Signer)
	}
	if _, err := ParsePrivateKey(pub); err == nil || !strings.Contains(err.Error(), "this is a public key") {
		t.Errorf("public key as private: %v", err)
	}
	if _, err := ParsePublicKey(priv); err == nil || !strings.Contains(err.Error(), "this is a private key") {
		t.Errorf("private key as public: %v", err)
	}
	if _, err := ParsePublicKey([]byte("hello")); err == nil || !strings.Contains(err.Error(), "not a key file") {
		t.Errorf("garbage as a key: %v", err)
	}
	if _, err := GenerateKey("a\nb"); err == nil {
		t.Error("a signer with a newline was accepted")
	}
}

func TestLoadPrivateKey_RefusesAKeyOpenToOthers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := os.WriteFile(p, testKey(1, "").MarshalPrivate(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("mode 0644: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := LoadPrivateKey(p); err != nil {
		t.Error(err)
	}
}

// The payload's exact bytes: changing them breaks every signature made
// so far, so this test pins them.
func TestSignature_Payload_Canonical(t *testing.T) {
	k := testKey(1, `Alice "A" <alice@example.com> & co\`)
	s, err := SignModule(k, "", "web", "1.2.0", map[string]string{"b.sh": "sha256:" + strings.Repeat("b", 64),
		"a.hcl": "sha256:" + strings.Repeat("a", 64), SigFile: "sha256:" + strings.Repeat("f", 64)}, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	want := "dtk-module-signature-v1\n" +
		`{"algorithm":"ed25519","files":{"a.hcl":"sha256:` + strings.Repeat("a", 64) + `","b.sh":"sha256:` + strings.Repeat("b", 64) + `"},` +
		`"key_id":"` + k.ID() + `","module":"web","module_version":"1.2.0","signed_at":"2026-11-27T12:00:00Z",` +
		`"signer":"Alice \"A\" <alice@example.com> & co\\","version":1}`
	if got := string(s.Payload()); got != want {
		t.Errorf("payload:\n%s\nwant:\n%s", got, want)
	}
	// Ed25519 is deterministic: the same key and payload, the same bytes.
	s2, _ := SignModule(k, "", "web", "1.2.0", s.Files, signedAt)
	if s2.Signature != s.Signature {
		t.Error("two signatures of the same payload differ")
	}
	// The file parses back to the same signature.
	back, err := ParseSignature(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Payload(), s.Payload()) || back.Signature != s.Signature {
		t.Error("dtk.sig does not round-trip")
	}
}

func TestVerifyModule(t *testing.T) {
	alice := testKey(1, "alice")
	mallory := testKey(2, "mallory")
	trusted := NewKeyring(alice.Public())
	good, err := SignModule(alice, "", "web", "1.2.0", testFiles(), signedAt)
	if err != nil {
		t.Fatal(err)
	}
	raw := good.Marshal()
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(raw, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	files := func(f func(map[string]string)) map[string]string {
		m := testFiles()
		f(m)
		return m
	}
	strangers, _ := SignModule(mallory, "alice", "web", "1.2.0", testFiles(), signedAt)
	forged := *strangers
	forged.KeyID = alice.ID() // mallory's signature claiming alice's key
	for _, c := range []struct {
		name    string
		raw     []byte
		module  string
		version string
		files   map[string]string
		kind    error
		msg     string
	}{
		{"good", raw, "web", "1.2.0", testFiles(), nil, ""},
		{"good, dtk.sig among the files", raw, "web", "1.2.0", files(func(m map[string]string) { m[SigFile] = "sha256:" + strings.Repeat("0", 64) }), nil, ""},
		{"unsigned", nil, "web", "1.2.0", testFiles(), ErrUnsigned, "web@1.2.0 is not signed (no dtk.sig)"},
		{"tampered file", raw, "web", "1.2.0", files(func(m map[string]string) { m["scripts/run.sh"] = "sha256:" + strings.Repeat("9", 64) }),
			ErrInvalid, "the files differ from what key " + alice.ID() + " (alice) signed: changed scripts/run.sh; sign the module again (dtkctl module sign)"},
		{"added file", raw, "web", "1.2.0", files(func(m map[string]string) { m[".hidden/payload.sh"] = "sha256:" + strings.Repeat("9", 64) }),
			ErrInvalid, "added .hidden/payload.sh"},
		{"removed file", raw, "web", "1.2.0", files(func(m map[string]string) { delete(m, "images/app.tar") }), ErrInvalid, "removed images/app.tar"},
		{"all three", raw, "web", "1.2.0", files(func(m map[string]string) {
			delete(m, "images/app.tar")
			m["main.hcl"] = "sha256:" + strings.Repeat("9", 64)
			m["new"] = "sha256:" + strings.Repeat("9", 64)
		}), ErrInvalid, "changed main.hcl; added new; removed images/app.tar"},
		{"signed by a stranger", strangers.Marshal(), "web", "1.2.0", testFiles(), ErrUntrusted,
			"web@1.2.0 is signed by key " + mallory.ID() + " (alice), which is not a trusted key"},
		{"a stranger's signature under a trusted key id", forged.Marshal(), "web", "1.2.0", testFiles(), ErrInvalid,
			"the signature in dtk.sig does not verify with key " + alice.ID() + " (alice): dtk.sig was changed after it was signed"},
		{"signer changed", edit(func(m map[string]any) { m["signer"] = "bob" }), "web", "1.2.0", testFiles(), ErrInvalid, "does not verify"},
		{"file list changed to match tampering", edit(func(m map[string]any) {
			m["files"].(map[string]any)["main.hcl"] = "sha256:" + strings.Repeat("9", 64)
		}), "web", "1.2.0", files(func(m map[string]string) { m["main.hcl"] = "sha256:" + strings.Repeat("9", 64) }), ErrInvalid, "does not verify"},
		{"wrong module name", raw, "api", "1.2.0", testFiles(), ErrInvalid, "dtk.sig signs web@1.2.0, but this is api@1.2.0"},
		{"wrong version", raw, "web", "1.3.0", testFiles(), ErrInvalid, "dtk.sig signs web@1.2.0, but this is web@1.3.0"},
		{"truncated", raw[:len(raw)/2], "web", "1.2.0", testFiles(), ErrInvalid, "dtk.sig is not well-formed JSON"},
		{"truncated signature", edit(func(m map[string]any) { m["signature"] = m["signature"].(string)[:40] }), "web", "1.2.0", testFiles(), ErrInvalid,
			"signature is not the base64 of a 64-byte Ed25519 signature"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), "web", "1.2.0", testFiles(), ErrInvalid, `unknown field "extra"`},
		{"other version", edit(func(m map[string]any) { m["version"] = 2 }), "web", "1.2.0", testFiles(), ErrInvalid, "version 2 is not supported"},
		{"other algorithm", edit(func(m map[string]any) { m["algorithm"] = "rsa" }), "web", "1.2.0", testFiles(), ErrInvalid, `algorithm "rsa" is not supported`},
		{"path escaping the module", edit(func(m map[string]any) { m["files"].(map[string]any)["../x"] = "sha256:" + strings.Repeat("9", 64) }),
			"web", "1.2.0", testFiles(), ErrInvalid, "not a clean relative path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := VerifyModule(c.raw, c.module, c.version, c.files, trusted)
			if c.kind == nil {
				if err != nil || s.Signer != "alice" || s.KeyID != alice.ID() {
					t.Fatalf("got %v, %+v", err, s)
				}
				return
			}
			var se *Error
			if !errors.Is(err, c.kind) || !errors.As(err, &se) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v with %q", err, c.kind, c.msg)
			}
		})
	}
	// An empty keyring trusts nothing.
	if _, err := VerifyModule(raw, "web", "1.2.0", testFiles(), nil); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no keys: %v", err)
	}
}

// Other tools check a dtk.sig with its payload and the key files as they
// are: OpenSSL derives the same public key and verifies the signature.
func TestSignature_OpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	k, _ := GenerateKey("alice")
	s, err := SignModule(k, "", "web", "1.2.0", testFiles(), signedAt)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(s.Signature)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	keyFile, pubFile := write("k.key", k.MarshalPrivate()), write("k.pub", k.Public().MarshalPublic())
	out, err := exec.Command("openssl", "pkey", "-in", keyFile, "-pubout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	if pub, _ := os.ReadFile(pubFile); !bytes.HasSuffix(pub, out) {
		t.Errorf("openssl derives\n%s\nthe public key file is\n%s", out, pub)
	}
	out, err = exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin",
		"-in", write("payload", s.Payload()), "-sigfile", write("sig", sig)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Errorf("openssl pkeyutl -verify: %v\n%s", err, out)
	}
}

// ArchiveFiles reads a packed module as DirFiles reads its folder, and
// DirFiles reuses the digests it is given.
func TestArchiveFiles_MatchesDirFiles(t *testing.T) {
	dir := t.TempDir()
	for p, c := range map[string]string{"main.hcl": "module {}\n", "a/b/c.sh": "echo\n", ".env": "x=1\n", SigFile: "{}\n"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644)
	}
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, sig, err := ArchiveFiles(bytes.NewReader(tgz), 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(sig) != "{}\n" {
		t.Errorf("dtk.sig read as %q", sig)
	}
	want, err := DirFiles(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || diffFiles(want, files) != "" {
		t.Errorf("archive files %v, folder files %v", files, want)
	}
	// A file under a dot-folder counts (Pack leaves those out, but an
	// archive made otherwise may carry them).
	os.MkdirAll(filepath.Join(dir, ".hidden"), 0o755)
	os.WriteFile(filepath.Join(dir, ".hidden", "x"), []byte("x"), 0o644)
	known := map[string]string{"main.hcl": "sha256:" + strings.Repeat("a", 64)}
	got, err := DirFiles(dir, known)
	if err != nil {
		t.Fatal(err)
	}
	if got["main.hcl"] != known["main.hcl"] || got[".hidden/x"] == "" || len(got) != 5 {
		t.Errorf("DirFiles: %v", got)
	}
	if _, _, err := ArchiveFiles(bytes.NewReader(tgz), 2, 1<<20); err == nil {
		t.Error("more entries than allowed were read")
	}
}

func signedBundle(t *testing.T, k *PrivateKey) *bundle.Manifest {
	t.Helper()
	m := &bundle.Manifest{Created: signedAt.Add(1500 * time.Millisecond), CreatedBy: "dtkctl test", Modules: []bundle.Entry{
		{Name: "web", Version: "1.2.0", Digest: "sha256:" + strings.Repeat("a", 64), Size: 10},
		{Name: "db", Version: "2.0.0", Digest: "sha256:" + strings.Repeat("b", 64), Size: 20},
	}}
	if err := SignManifest(m, k, "", signedAt); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyManifest(t *testing.T) {
	alice, mallory := testKey(1, "alice"), testKey(2, "mallory")
	trusted := NewKeyring(alice.Public())
	m := signedBundle(t, alice)
	if m.FormatVersion != bundle.FormatVersionSigned {
		t.Errorf("format_version %d", m.FormatVersion)
	}
	if err := VerifyManifest(m, trusted); err != nil {
		t.Fatal(err)
	}
	// Through a bundle file and back.
	blobs := map[string][]byte{m.Modules[0].Digest: bytes.Repeat([]byte{1}, 10), m.Modules[1].Digest: bytes.Repeat([]byte{2}, 20)}
	var buf bytes.Buffer
	_, err := bundle.Write(&buf, *m, func(e bundle.Entry) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[e.Digest])), nil
	})
	if err == nil || !strings.Contains(err.Error(), "blob content is") {
		t.Fatalf("write with made-up digests: %v", err) // the blobs are not those digests: Write checks
	}
	for i := range m.Modules {
		m.Modules[i].Digest = archive.Digest(blobs[m.Modules[i].Digest])
	}
	if err := VerifyManifest(m, trusted); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a manifest changed after signing: %v", err)
	}
	if err := SignManifest(m, alice, "", signedAt); err != nil {
		t.Fatal(err)
	}
	byDigest := map[string][]byte{m.Modules[0].Digest: bytes.Repeat([]byte{1}, 10), m.Modules[1].Digest: bytes.Repeat([]byte{2}, 20)}
	buf.Reset()
	if _, err := bundle.Write(&buf, *m, func(e bundle.Entry) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(byDigest[e.Digest])), nil
	}); err != nil {
		t.Fatal(err)
	}
	read, err := bundle.Read(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if read.FormatVersion != bundle.FormatVersionSigned || read.Signature == nil {
		t.Fatalf("read back %+v", read)
	}
	if err := VerifyManifest(read, trusted); err != nil {
		t.Fatalf("a signed bundle read back: %v", err)
	}

	for _, c := range []struct {
		name string
		edit func(m *bundle.Manifest)
		keys *Keyring
		kind error
		msg  string
	}{
		{"unsigned", func(m *bundle.Manifest) { m.Signature = nil }, trusted, ErrUnsigned, "the bundle is not signed"},
		{"untrusted", func(m *bundle.Manifest) { *m = *signedBundle(t, mallory) }, trusted, ErrUntrusted,
			"the bundle is signed by key " + mallory.ID() + " (mallory), which is not a trusted key"},
		{"a module's digest", func(m *bundle.Manifest) { m.Modules[0].Digest = "sha256:" + strings.Repeat("9", 64) }, trusted, ErrInvalid,
			"does not verify with key " + alice.ID() + " (alice): its manifest was changed after it was signed"},
		{"a module dropped", func(m *bundle.Manifest) { m.Modules = m.Modules[:1] }, trusted, ErrInvalid, "does not verify"},
		{"created", func(m *bundle.Manifest) { m.Created = m.Created.Add(time.Second) }, trusted, ErrInvalid, "does not verify"},
		{"signer", func(m *bundle.Manifest) { m.Signature.Signer = "bob" }, trusted, ErrInvalid, "does not verify"},
		{"truncated signature", func(m *bundle.Manifest) { m.Signature.Signature = m.Signature.Signature[:20] }, trusted, ErrInvalid, "not the base64"},
		{"bad key id", func(m *bundle.Manifest) { m.Signature.KeyID = "XYZ" }, trusted, ErrInvalid, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := signedBundle(t, alice)
			sig := *m.Signature
			m.Signature = &sig
			c.edit(m)
			err := VerifyManifest(m, c.keys)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v with %q", err, c.kind, c.msg)
			}
		})
	}
}

func TestManifest_Check_SignatureAndVersion(t *testing.T) {
	m := signedBundle(t, testKey(1, ""))
	m.FormatVersion = bundle.FormatVersion
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), "format_version 1 carries no signature") {
		t.Errorf("v1 with a signature: %v", err)
	}
	m.FormatVersion, m.Signature = bundle.FormatVersionSigned, nil
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), "its signature is missing") {
		t.Errorf("v2 without one: %v", err)
	}
	m.FormatVersion = 3
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), "format_version 3 is not supported (this dtkctl reads 1 and 2)") {
		t.Errorf("v3: %v", err)
	}
}
