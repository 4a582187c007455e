package packaging

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is a throwaway release key, made once per test binary (RSA 2048:
// quick to make, and what rpm, gpgv and debsig-verify accept like 4096).
type testKey struct {
	signer                        *Signer
	secret, pubArmored, pubBinary string // files
	keyID                         string // the long key ID, upper-case hex
}

var (
	keyOnce sync.Once
	keyDir  string
	theKey  testKey
	keyErr  error
)

func signingKey(t *testing.T) testKey {
	t.Helper()
	keyOnce.Do(func() {
		keyDir, keyErr = os.MkdirTemp("", "dtk-packaging-key-")
		if keyErr != nil {
			return
		}
		theKey, keyErr = writeTestKey(keyDir, "dtk test release key", nil)
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return theKey
}

func writeTestKey(dir, name string, passphrase []byte) (testKey, error) {
	sec, s, err := GenerateKey(name, "test@dtk.invalid", 2048, passphrase)
	if err != nil {
		return testKey{}, err
	}
	k := testKey{
		signer: s, secret: filepath.Join(dir, name+"-secret.asc"),
		pubArmored: filepath.Join(dir, name+".asc"), pubBinary: filepath.Join(dir, name+".gpg"),
		keyID: s.Fingerprint()[len(s.Fingerprint())-16:],
	}
	if err := os.WriteFile(k.secret, sec, 0o600); err != nil {
		return k, err
	}
	for path, armored := range map[string]bool{k.pubArmored: true, k.pubBinary: false} {
		b, err := s.PublicKey(armored)
		if err != nil {
			return k, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return k, err
		}
	}
	return k, nil
}

// A key file read back signs as the key that was made; a protected one
// needs its passphrase; a public key alone cannot sign.
func TestLoadSigner_PassphraseAndPublicKey(t *testing.T) {
	dir := t.TempDir()
	k, err := writeTestKey(dir, "locked", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"", "wrong"} {
		if _, err := LoadSigner(k.secret, []byte(pass)); !errors.Is(err, ErrPassphrase) {
			t.Errorf("passphrase %q: %v, want ErrPassphrase", pass, err)
		}
	}
	s, err := LoadSigner(k.secret, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint() != k.signer.Fingerprint() {
		t.Errorf("fingerprint %s, want %s", s.Fingerprint(), k.signer.Fingerprint())
	}
	var sig bytes.Buffer
	if err := s.ArmoredDetachSign(&sig, strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(k.pubBinary)
	if fp, err := Verify(pub, strings.NewReader("data"), sig.Bytes()); err != nil || fp != k.signer.Fingerprint() {
		t.Errorf("Verify: %s, %v", fp, err)
	}
	if _, err := LoadSigner(k.pubArmored, nil); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("public key as signing key: %v, want ErrNoSigningKey", err)
	}
}

// A detached signature verifies for the signed bytes only, and with the
// signing key only.
func TestVerify_RefusesTamperedDataAndOtherKeys(t *testing.T) {
	k := signingKey(t)
	data := []byte("0123456789abcdef  dtk_1.0.0_amd64.deb\n")
	var armored, binary bytes.Buffer
	if err := k.signer.ArmoredDetachSign(&armored, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := k.signer.DetachSign(&binary, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	pubA, _ := os.ReadFile(k.pubArmored)
	pubB, _ := os.ReadFile(k.pubBinary)
	for _, pub := range [][]byte{pubA, pubB} {
		for _, sig := range [][]byte{armored.Bytes(), binary.Bytes()} {
			if _, err := Verify(pub, bytes.NewReader(data), sig); err != nil {
				t.Errorf("good signature refused: %v", err)
			}
			if _, err := Verify(pub, bytes.NewReader(flipByte(data, 3)), sig); err == nil {
				t.Error("a signature verified for changed data")
			}
		}
	}
	other, err := writeTestKey(t.TempDir(), "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _ := os.ReadFile(other.pubBinary)
	if _, err := Verify(otherPub, bytes.NewReader(data), armored.Bytes()); err == nil {
		t.Error("a signature verified with another key")
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

// flipFileByte writes a copy of path with one byte flipped at offset
// (negative: from the end) and returns the copy's path.
func flipFileByte(t *testing.T, path string, offset int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset < 0 {
		offset += len(b)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, flipByte(b, offset), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeBinaries are stand-ins for dtk-agent and dtkctl: the signing tests
// are about the packages' envelopes, not what is in them.
func fakeBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"dtk-agent", "dtkctl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// signedRelease builds a signed release (packages, bundle, sums) for this
// arch from stand-in binaries.
func signedRelease(t *testing.T, k testKey) (out string, deb, rpm, bundle string) {
	t.Helper()
	out = t.TempDir()
	o := Options{Version: "v1.0.0", BinDir: fakeBinaries(t), RepoDir: "..", OutDir: out,
		MTime: time.Unix(1700000000, 0), Signer: k.signer}
	var log bytes.Buffer
	written, err := Release(o, []string{runtime.GOARCH}, true, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "signed with "+k.signer.Fingerprint()) {
		t.Errorf("log does not name the key:\n%s", log.String())
	}
	for _, p := range written {
		switch {
		case strings.HasSuffix(p, ".deb"):
			deb = p
		case strings.HasSuffix(p, ".rpm"):
			rpm = p
		case strings.HasSuffix(p, ".tar.gz"):
			bundle = p
		}
	}
	for _, p := range []string{deb, rpm, bundle, filepath.Join(out, SumsName)} {
		if p == "" {
			t.Fatalf("release wrote %v", written)
		}
		if _, err := os.Stat(p + ".asc"); err != nil {
			t.Errorf("no detached signature for %s: %v", p, err)
		}
	}
	return out, deb, rpm, bundle
}

// `make dist SIGN_KEY=...`: every artefact verifies, with the library and
// with the tools Debian and RPM users have (gpgv on SHA256SUMS.asc and the
// .asc files, rpmkeys --checksig, debsig-verify); a package with one byte
// flipped and a SHA256SUMS with one digit changed are caught by each.
func TestRelease_Signed_VerifiesAndCatchesTampering(t *testing.T) {
	k := signingKey(t)
	out, deb, rpm, _ := signedRelease(t, k)
	pub, _ := os.ReadFile(k.pubBinary)
	sums := filepath.Join(out, SumsName)

	// The library.
	verifyFile := func(path, sig string) error {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s, err := os.ReadFile(sig)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(pub, f, s)
		return err
	}
	for _, p := range []string{deb, rpm, sums} {
		if err := verifyFile(p, p+".asc"); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
	badDeb := flipFileByte(t, deb, debDataOffset(t, deb)+200)
	badRPM := flipFileByte(t, rpm, -100)
	badSums := tamperSums(t, sums)
	for _, bad := range []string{badDeb, badRPM, badSums} {
		if err := verifyFile(bad, filepath.Join(out, filepath.Base(bad))+".asc"); err == nil {
			t.Errorf("library: tampered %s verified", filepath.Base(bad))
		}
	}
	// The published public key is the signing key.
	if b, _ := os.ReadFile(filepath.Join(out, PublicKeyBinary)); !bytes.Equal(b, pub) {
		t.Errorf("%s is not the signing key's public key", PublicKeyBinary)
	}

	// gpgv and sha256sum, as docs/install.md tells users to run them.
	requireTool(t, "gpgv", "gpgv")
	requireTool(t, "sha256sum", "coreutils")
	gpgv := func(sig, data string) (string, error) {
		b, err := exec.Command("gpgv", "--homedir", t.TempDir(), "--keyring", k.pubBinary, sig, data).CombinedOutput()
		return string(b), err
	}
	if o, err := gpgv(sums+".asc", sums); err != nil || !strings.Contains(o, "Good signature") {
		t.Errorf("gpgv SHA256SUMS.asc: %v\n%s", err, o)
	}
	check := exec.Command("sha256sum", "--check", "--strict", SumsName)
	check.Dir = out
	if o, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, o)
	}
	if o, err := gpgv(deb+".asc", deb); err != nil {
		t.Errorf("gpgv %s.asc: %v\n%s", filepath.Base(deb), err, o)
	}
	if o, err := gpgv(sums+".asc", badSums); err == nil {
		t.Errorf("gpgv accepted a SHA256SUMS with one digit changed:\n%s", o)
	}
	if o, err := gpgv(deb+".asc", badDeb); err == nil {
		t.Errorf("gpgv accepted a .deb with one byte flipped:\n%s", o)
	}
	// A flipped byte in a package fails its checksum.
	tampered := t.TempDir()
	os.Link(sums, filepath.Join(tampered, SumsName))
	for _, p := range []string{badDeb, badRPM} {
		os.Link(p, filepath.Join(tampered, filepath.Base(p)))
	}
	check = exec.Command("sha256sum", "--check", "--ignore-missing", SumsName)
	check.Dir = tampered
	if o, err := check.CombinedOutput(); err == nil || strings.Count(string(o), "FAILED") != 2 {
		t.Errorf("sha256sum --check on two tampered packages: %v\n%s", err, o)
	}

	// rpm's own check, against a throwaway rpm database holding the key.
	requireTool(t, "rpmkeys", "rpm")
	db := t.TempDir()
	run(t, "rpmkeys", "--dbpath", db, "--import", k.pubArmored)
	if o := run(t, "rpmkeys", "--dbpath", db, "--checksig", "-v", rpm); !strings.Contains(o, "V4 RSA/SHA256 Signature, key ID "+strings.ToLower(k.keyID[8:])+": OK") ||
		!strings.Contains(o, "Header V4 RSA/SHA256 Signature") {
		t.Errorf("rpmkeys --checksig:\n%s", o)
	}
	if o, err := exec.Command("rpmkeys", "--dbpath", db, "--checksig", badRPM).CombinedOutput(); err == nil {
		t.Errorf("rpmkeys accepted an .rpm with one byte flipped:\n%s", o)
	}
	// Without the key imported, the signature is not trusted.
	if o, err := exec.Command("rpmkeys", "--dbpath", t.TempDir(), "--checksig", rpm).CombinedOutput(); err == nil {
		t.Errorf("rpmkeys accepted a signature by a key it does not have:\n%s", o)
	}

	// debsig-verify, with a policy for the key (docs/install.md).
	requireTool(t, "debsig-verify", "debsig-verify")
	pol, krs := debsigPolicy(t, k)
	debsig := func(path string) (string, error) {
		b, err := exec.Command("debsig-verify", "--policies-dir", pol, "--keyrings-dir", krs, path).CombinedOutput()
		return string(b), err
	}
	if o, err := debsig(deb); err != nil {
		t.Errorf("debsig-verify: %v\n%s", err, o)
	}
	if o, err := debsig(badDeb); err == nil {
		t.Errorf("debsig-verify accepted a .deb with one byte flipped:\n%s", o)
	}
}

// debDataOffset is where data.tar.gz starts in a .deb (ar member header
// included), so that a flipped byte lands in the package's files.
func debDataOffset(t *testing.T, deb string) int {
	t.Helper()
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("data.tar.gz"))
	if i < 0 {
		t.Fatalf("%s has no data.tar.gz member", deb)
	}
	return i + 60
}

// tamperSums writes a copy of SHA256SUMS with the first digit of the
// first sum changed.
func tamperSums(t *testing.T, sums string) string {
	t.Helper()
	b, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	c := append([]byte(nil), b...)
	if c[0] == '0' {
		c[0] = '1'
	} else {
		c[0] = '0'
	}
	out := filepath.Join(t.TempDir(), SumsName)
	if err := os.WriteFile(out, c, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// debsigPolicy writes a debsig-verify policy and keyring for the key, as
// docs/install.md shows, into temporary folders.
func debsigPolicy(t *testing.T, k testKey) (policies, keyrings string) {
	t.Helper()
	policies, keyrings = t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(policies, k.keyID), 0o755)
	os.MkdirAll(filepath.Join(keyrings, k.keyID), 0o755)
	b, _ := os.ReadFile(k.pubBinary)
	if err := os.WriteFile(filepath.Join(keyrings, k.keyID, "debsig.gpg"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policies, k.keyID, "dtk.pol"), []byte(DebsigPolicy(k.keyID)), 0o644); err != nil {
		t.Fatal(err)
	}
	return policies, keyrings
}

// From a signed bundle, install.sh installs only when SHA256SUMS.asc
// verifies with the key given and every file matches SHA256SUMS: a flipped
// byte, a SHA256SUMS rewritten to match it, a SHA256SUMS with one digit
// changed, another key, no key and an unsigned bundle are each refused
// before anything is installed.
func TestBundle_InstallSh_ChecksSignature(t *testing.T) {
	requireTool(t, "gpgv", "gpgv")
	requireTool(t, "sha256sum", "coreutils")
	k := signingKey(t)
	_, deb, _, bundle := signedRelease(t, k)
	other, err := writeTestKey(t.TempDir(), "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	// unpack gives a fresh copy of the bundle, changed by edit.
	unpack := func(edit func(dir string)) string {
		u := t.TempDir()
		untar(t, bundle, u)
		dir := filepath.Join(u, "dtk-v1.0.0-linux-"+runtime.GOARCH)
		if edit != nil {
			edit(dir)
		}
		return dir
	}
	install := func(dir string, args ...string) (string, string, error) {
		root := t.TempDir()
		args = append([]string{"--root", root, "--no-user"}, args...)
		b, err := exec.Command(filepath.Join(dir, "install.sh"), args...).CombinedOutput()
		return string(b), root, err
	}
	refused := func(name, out, root string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: not refused with %q: %v\n%s", name, want, err, out)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("%s: installed %d entries before refusing", name, len(entries))
		}
	}
	flip := func(rel string) func(string) {
		return func(dir string) {
			p := filepath.Join(dir, rel)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, flipByte(b, len(b)/2), 0o755)
		}
	}
	resum := func(dir string) { // what a forger would do next
		cmd := exec.Command("sh", "-c", "grep -v '  SHA256SUMS' SHA256SUMS | cut -c67- | xargs sha256sum > S && mv S SHA256SUMS")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rewrite SHA256SUMS: %v\n%s", err, b)
		}
	}

	good := unpack(nil)
	out, root, err := install(good, "--keyring", k.pubBinary)
	if err != nil || !strings.Contains(out, "signed by the release key "+k.signer.Fingerprint()) {
		t.Fatalf("signed bundle with its key: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/dtkctl")); err != nil {
		t.Errorf("not installed: %v", err)
	}
	if _, err := exec.LookPath("gpg"); err == nil { // an armored key is read through gpg
		if out, _, err := install(good, "--keyring", k.pubArmored); err != nil {
			t.Errorf("armored key: %v\n%s", err, out)
		}
	}

	out, root, err = install(unpack(flip("bin/dtkctl")), "--keyring", k.pubBinary)
	refused("a flipped byte", out, root, err, "checksums do not match")
	out, root, err = install(unpack(flip("packages/"+filepath.Base(deb))), "--keyring", k.pubBinary)
	refused("a flipped byte in the .deb", out, root, err, "checksums do not match")
	out, root, err = install(unpack(func(d string) { flip("bin/dtkctl")(d); resum(d) }), "--keyring", k.pubBinary)
	refused("a flipped byte with SHA256SUMS rewritten", out, root, err, "does not verify")
	out, root, err = install(unpack(func(d string) {
		p := filepath.Join(d, SumsName)
		b, _ := os.ReadFile(tamperSums(t, p))
		os.WriteFile(p, b, 0o644)
	}), "--keyring", k.pubBinary)
	refused("a changed SHA256SUMS", out, root, err, "does not verify")
	out, root, err = install(good, "--keyring", other.pubBinary)
	refused("another key", out, root, err, "does not verify")
	if _, err := os.Stat("/usr/share/keyrings/dtk-release-key.gpg"); err != nil {
		out, root, err = install(good)
		refused("no key", out, root, err, "no key to check this bundle's signature")
	}
	out, root, err = install(good, "--keyring", filepath.Join(t.TempDir(), "missing.gpg"))
	refused("a missing key file", out, root, err, "cannot read the key")

	unsigned := unpack(func(d string) { os.Remove(filepath.Join(d, SumsSigName)) })
	out, root, err = install(unsigned, "--keyring", k.pubBinary)
	refused("an unsigned bundle with a key", out, root, err, "this bundle is not signed")
	out, root, err = install(unsigned)
	refused("an unsigned bundle", out, root, err, "--allow-unsigned")
	out, root, err = install(unsigned, "--allow-unsigned")
	if err != nil || !strings.Contains(out, "WARNING: this bundle is NOT SIGNED") {
		t.Errorf("--allow-unsigned: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/dtkctl")); err != nil {
		t.Errorf("--allow-unsigned did not install: %v", err)
	}
	// --allow-unsigned still checks the checksums.
	out, root, err = install(unpack(func(d string) { os.Remove(filepath.Join(d, SumsSigName)); flip("bin/dtk-agent")(d) }), "--allow-unsigned")
	refused("--allow-unsigned, a flipped byte", out, root, err, "checksums do not match")
}

// Without a key, Release signs nothing and leaves no signature of an
// earlier signed run behind.
func TestRelease_Unsigned_RemovesStaleSignatures(t *testing.T) {
	k := signingKey(t)
	out, _, _, _ := signedRelease(t, k)
	o := Options{Version: "v1.0.0", BinDir: fakeBinaries(t), RepoDir: "..", OutDir: out, MTime: time.Unix(1700000000, 0)}
	if _, err := Release(o, []string{runtime.GOARCH}, true, io.Discard); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(out, "*.asc"))
	if _, err := os.Stat(filepath.Join(out, PublicKeyBinary)); err == nil {
		left = append(left, PublicKeyBinary)
	}
	if len(left) != 0 {
		t.Errorf("an unsigned release left %v", left)
	}
	if !strings.Contains(UnsignedWarning, "NOT SIGNED") {
		t.Error("the warning does not say NOT SIGNED")
	}
}
