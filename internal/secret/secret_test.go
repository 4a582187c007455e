package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	kek := newKey(t)
	plain := []byte("the gossip keyring")
	sealed, err := Seal(kek, plain, "gossip-keyring")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "dtk1:") || strings.Contains(sealed, string(plain)) {
		t.Fatalf("sealed = %q", sealed)
	}
	again, _ := Seal(kek, plain, "gossip-keyring")
	if again == sealed {
		t.Fatal("two seals of the same value are equal: nonce not random")
	}
	got, err := Open(kek, sealed+"\n", "gossip-keyring")
	if err != nil || string(got) != string(plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	t.Run("wrong key", func(t *testing.T) {
		if _, err := Open(newKey(t), sealed, "gossip-keyring"); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("err = %v, want ErrWrongKey", err)
		}
	})
	t.Run("wrong label", func(t *testing.T) {
		if _, err := Open(kek, sealed, "other"); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("err = %v, want ErrWrongKey", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "dtk1:"))
		for _, i := range []int{0, 12, len(b) - 1} {
			c := append([]byte{}, b...)
			c[i] ^= 1
			if _, err := Open(kek, "dtk1:"+base64.StdEncoding.EncodeToString(c), "gossip-keyring"); !errors.Is(err, ErrWrongKey) {
				t.Fatalf("flip byte %d: err = %v, want ErrWrongKey", i, err)
			}
		}
		if _, err := Open(kek, "dtk1:"+base64.StdEncoding.EncodeToString(b[:20]), "gossip-keyring"); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("truncated: err = %v, want ErrWrongKey", err)
		}
	})
	t.Run("bad prefix", func(t *testing.T) {
		for _, s := range []string{strings.TrimPrefix(sealed, "dtk1:"), "dtk2:" + strings.TrimPrefix(sealed, "dtk1:"), ""} {
			_, err := Open(kek, s, "gossip-keyring")
			if err == nil || errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "dtk1:") {
				t.Fatalf("Open(%q) err = %v", s, err)
			}
		}
		if _, err := Open(kek, "dtk1:!!!", "gossip-keyring"); err == nil || !strings.Contains(err.Error(), "base64") {
			t.Fatalf("bad base64: err = %v", err)
		}
	})
	t.Run("short kek", func(t *testing.T) {
		if _, err := Seal(kek[:16], plain, "x"); err == nil {
			t.Fatal("Seal accepted a 16-byte key")
		}
	})
}

func TestParseKey(t *testing.T) {
	k, _ := GenerateKey()
	if len(k) != 44 {
		t.Fatalf("key %q: %d characters", k, len(k))
	}
	if _, err := ParseKey("  " + k + "\n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 16)), base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		_, err := ParseKey(bad)
		if err == nil || !strings.Contains(err.Error(), "base64 encoding of 32 random bytes") {
			t.Errorf("ParseKey(%q) err = %v", bad, err)
		}
	}
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	p := filepath.Join(dir, "keyring.key")
	if err := os.WriteFile(p, []byte(k+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKEK(p)
	if err != nil || base64.StdEncoding.EncodeToString(got) != k {
		t.Fatalf("LoadKEK = %v, %v", got, err)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKEK(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("mode %04o: err = %v", mode, err)
		}
	}

	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("short"), 0o600)
	if _, err := LoadKEK(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad key: err = %v", err)
	}
	missing := filepath.Join(dir, "missing.key")
	if _, err := LoadKEK(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing: err = %v", err)
	}
}

// BenchmarkSeal: what sealing a Raft entry costs (a report batch of ~300
// reports is about 150 KB).
func BenchmarkSeal(b *testing.B) {
	k, _ := GenerateKey()
	kek, _ := ParseKey(k)
	for _, size := range []int{1 << 10, 150 << 10, 1 << 20} {
		msg := make([]byte, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if _, err := Seal(kek, msg, "raft-entry"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
