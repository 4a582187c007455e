package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/dtkhq/dtk/internal/secret"
)

// logBuf collects a member's log for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testMember struct {
	*Member
	log *logBuf
}

// startMember starts a fast member named after its address; each test
// member has its own loopback address and fixed port.
func startMember(t *testing.T, addr string, cfg Config) testMember {
	t.Helper()
	lb := &logBuf{}
	cfg.Name = addr
	cfg.BindAddr = addr
	cfg.Fast = true
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", addr, err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return testMember{m, lb}
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := secret.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// alive lists the members m sees alive.
func alive(m *Member) []string {
	var out []string
	for _, mem := range m.Serf().Members() {
		if mem.Status == serf.StatusAlive {
			out = append(out, mem.Name)
		}
	}
	slices.Sort(out)
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWhole waits until every member sees exactly the given members alive.
func waitWhole(t *testing.T, ms ...testMember) {
	t.Helper()
	var want []string
	for _, m := range ms {
		want = append(want, m.serf.LocalMember().Name)
	}
	slices.Sort(want)
	eventually(t, "pool of "+strings.Join(want, ", "), func() bool {
		for _, m := range ms {
			if !slices.Equal(alive(m.Member), want) {
				return false
			}
		}
		return true
	})
}

// refused asserts that intruder cannot join the pool through pool[0]:
// Join fails, and the pool never lists it.
func refused(t *testing.T, intruder testMember, pool ...testMember) {
	t.Helper()
	if n, err := intruder.Join([]string{pool[0].serf.LocalMember().Name}); n > 0 {
		t.Fatalf("%s joined the pool (n=%d, err=%v)", intruder.serf.LocalMember().Name, n, err)
	}
	// The one bounded wait: a refused member must stay out, which can
	// only be seen by watching for a while (2 s is ten probe intervals
	// and many gossip rounds with Fast).
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, m := range pool {
			if n := len(m.serf.Members()); n != len(pool) {
				t.Fatalf("%s lists %d members, want %d: %v", m.serf.LocalMember().Name, n, len(pool), m.serf.Members())
			}
		}
		if n := len(intruder.serf.Members()); n != 1 {
			t.Fatalf("intruder lists %d members", n)
		}
	}
}

func TestEncryptedJoin(t *testing.T) {
	key := newKey(t)
	a := startMember(t, "127.0.0.61:27961", Config{EncryptKey: key})
	b := startMember(t, "127.0.0.62:27962", Config{EncryptKey: key, Join: []string{"127.0.0.61:27961"}})
	waitWhole(t, a, b)
	if !a.Encrypted() {
		t.Fatal("a not encrypted")
	}
	if p, keys := a.LocalKeys(); p != key || !slices.Equal(keys, []string{key}) {
		t.Fatalf("LocalKeys = %q, %q", p, keys)
	}

	t.Run("no key", func(t *testing.T) {
		c := startMember(t, "127.0.0.63:27963", Config{})
		refused(t, c, a, b)
		if c.Encrypted() {
			t.Fatal("c encrypted")
		}
		if _, err := c.ListKeys(); !errors.Is(err, ErrNotEncrypted) {
			t.Fatalf("ListKeys err = %v", err)
		}
		if _, err := c.InstallKey(key); !errors.Is(err, ErrNotEncrypted) || !strings.Contains(err.Error(), "--encrypt") {
			t.Fatalf("InstallKey err = %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		d := startMember(t, "127.0.0.64:27964", Config{EncryptKey: newKey(t)})
		refused(t, d, a, b)
	})
	eventually(t, "a warning about undecryptable traffic", func() bool {
		return strings.Contains(a.log.String(), "gossip traffic refused")
	})

	t.Run("bad keys", func(t *testing.T) {
		for _, k := range []string{"short", key[:20]} {
			if _, err := a.InstallKey(k); err == nil || !strings.Contains(err.Error(), "base64") {
				t.Errorf("InstallKey(%q) err = %v", k, err)
			}
		}
		_, err := Start(context.Background(), Config{Name: "x", BindAddr: "127.0.0.65:27965", EncryptKey: "nope"})
		if err == nil || !strings.Contains(err.Error(), "gossip encryption key") {
			t.Fatalf("Start with a bad key: err = %v", err)
		}
	})
}

// savedKeyring reads a keyring file, opening it with kek when given; it
// also checks the file's mode and that a sealed file shows no key.
func savedKeyring(t *testing.T, path string, kek []byte, keys ...string) keyringFile {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %04o", path, st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if kek != nil {
		for _, k := range keys {
			if strings.Contains(string(b), k) {
				t.Fatalf("%s shows key %s in clear", path, k)
			}
		}
		if b, err = secret.Open(kek, string(b), keyringLabel); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func TestKeyRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	kek, _ := secret.ParseKey(newKey(t))
	dir := t.TempDir()
	files := map[string]string{}
	cfg := func(name string, sealed bool, join ...string) Config {
		files[name] = filepath.Join(dir, name+".keyring")
		c := Config{EncryptKey: oldKey, KeyringPath: files[name], Join: join}
		if sealed {
			c.KEK = kek
		}
		return c
	}
	a := startMember(t, "127.0.0.65:27965", cfg("a", true))
	b := startMember(t, "127.0.0.66:27966", cfg("b", true, "127.0.0.65:27965"))
	c := startMember(t, "127.0.0.67:27967", cfg("c", false, "127.0.0.65:27965"))
	waitWhole(t, a, b, c)
	if f := savedKeyring(t, files["c"], nil); f.Primary != oldKey {
		t.Fatalf("c saved %+v at start", f)
	}

	st, err := a.ListKeys()
	if err != nil || st.NumNodes != 3 || st.Keys[oldKey] != 3 || len(st.Keys) != 1 {
		t.Fatalf("ListKeys = %+v, %v", st, err)
	}

	start := time.Now()
	if st, err := a.InstallKey(newK); err != nil || st.Keys == nil {
		t.Fatalf("InstallKey = %+v, %v", st, err)
	}
	waitWhole(t, a, b, c)
	if _, err := b.UseKey(newK); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	waitWhole(t, a, b, c)
	if st, err := a.RemoveKey(newK); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("removing the primary key: %+v, %v", st, err)
	}
	if _, err := c.RemoveKey(oldKey); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	waitWhole(t, a, b, c)
	t.Logf("rotation took %v", time.Since(start))

	st, err = a.ListKeys()
	if err != nil || st.NumNodes != 3 || len(st.Keys) != 1 || st.Keys[newK] != 3 || st.PrimaryKeys[newK] != 3 {
		t.Fatalf("after rotation ListKeys = %+v, %v", st, err)
	}
	for _, m := range []testMember{a, b, c} {
		if p, keys := m.LocalKeys(); p != newK || !slices.Equal(keys, []string{newK}) {
			t.Fatalf("LocalKeys = %q, %q", p, keys)
		}
	}

	// Every member saves the rotated keyring, including those that only
	// took part in other members' operations.
	for name, sealed := range map[string]bool{"a": true, "b": true, "c": false} {
		var k []byte
		if sealed {
			k = kek
		}
		eventually(t, name+" saves the new keyring", func() bool {
			f := savedKeyring(t, files[name], k, oldKey, newK)
			return f.Primary == newK && slices.Equal(f.Keys, []string{newK})
		})
	}

	d := startMember(t, "127.0.0.68:27968", Config{EncryptKey: newK, Join: []string{"127.0.0.66:27966"}})
	waitWhole(t, a, b, c, d)
	e := startMember(t, "127.0.0.69:27969", Config{EncryptKey: oldKey})
	refused(t, e, a, b, c, d)

	// c restarts with its configuration unchanged (the old key): the
	// saved keyring wins and it rejoins.
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	c.Shutdown()
	eventually(t, "c seen gone", func() bool { return len(alive(a.Member)) == 3 })
	c2 := startMember(t, "127.0.0.67:27967", Config{EncryptKey: oldKey, KeyringPath: files["c"], Join: []string{"127.0.0.65:27965"}})
	if p, _ := c2.LocalKeys(); p != newK {
		t.Fatalf("restarted c uses %q, want the saved key", p)
	}
	waitWhole(t, a, b, c2, d)
	if !strings.Contains(c2.log.String(), "not in the saved keyring") {
		t.Fatalf("no warning about the configured key; log:\n%s", c2.log.String())
	}
}

func TestSavedKeyringFile(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t)
	kek, _ := secret.ParseKey(newKey(t))
	path := filepath.Join(dir, "keyring")
	discard := slog.New(slog.DiscardHandler)

	// No file: the configured key.
	kr, err := setupKeyring(Config{EncryptKey: key, KeyringPath: path}, discard)
	if err != nil || kr == nil {
		t.Fatalf("setupKeyring = %v, %v", kr, err)
	}
	// No key, no file: in clear.
	if kr, err := setupKeyring(Config{KeyringPath: path}, discard); err != nil || kr != nil {
		t.Fatalf("setupKeyring = %v, %v", kr, err)
	}

	plain, _ := json.Marshal(keyringFile{Primary: key, Keys: []string{key}})
	sealed, _ := secret.Seal(kek, plain, keyringLabel)
	os.WriteFile(path, []byte(sealed), 0o600)
	if _, err := setupKeyring(Config{KeyringPath: path}, discard); err == nil || !strings.Contains(err.Error(), "key-encryption key is needed") {
		t.Fatalf("sealed without KEK: err = %v", err)
	}
	other, _ := secret.ParseKey(newKey(t))
	if _, err := setupKeyring(Config{KeyringPath: path, KEK: other}, discard); !errors.Is(err, secret.ErrWrongKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("sealed with another KEK: err = %v", err)
	}
	// A saved keyring turns encryption on even with no key configured.
	if kr, err := setupKeyring(Config{KeyringPath: path, KEK: kek}, discard); err != nil || kr == nil {
		t.Fatalf("setupKeyring = %v, %v", kr, err)
	}

	// A plain keyring is read with a KEK too, and sealed on start.
	os.WriteFile(path, plain, 0o600)
	m := startMember(t, "127.0.0.63:27970", Config{KeyringPath: path, KEK: kek})
	if !m.Encrypted() {
		t.Fatal("not encrypted")
	}
	if b, _ := os.ReadFile(path); !secret.IsSealed(string(b)) {
		t.Fatalf("keyring left in clear: %s", b)
	}

	os.WriteFile(path, []byte(`{"primary":"nope"}`), 0o600)
	if _, err := setupKeyring(Config{KeyringPath: path}, discard); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("bad file: err = %v", err)
	}
}
