package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFetchCA(t *testing.T) {
	ca := newCA(t, CAOptions{})
	s := storeFor(t, ca, RoleServer, "c1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	fp := Fingerprint(ca.Cert)
	colons := ""
	for i, r := range strings.TrimPrefix(fp, "sha256:") {
		if i > 0 && i%2 == 0 {
			colons += ":"
		}
		colons += string(r)
	}
	for _, f := range []string{fp, strings.TrimPrefix(fp, "sha256:"), strings.ToUpper(fp), "SHA256:" + strings.ToUpper(colons)} {
		got, err := FetchCA(ctx, addr, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !bytes.Equal(got, ca.CertPEM) {
			t.Errorf("%s: got another certificate", f)
		}
	}

	other := newCA(t, CAOptions{})
	_, err = FetchCA(ctx, addr, Fingerprint(other.Cert))
	if err == nil || !strings.Contains(err.Error(), "presented no CA with fingerprint "+Fingerprint(other.Cert)) || !strings.Contains(err.Error(), "dtk-agent tls ca create") {
		t.Errorf("wrong fingerprint: %v", err)
	}
	_, err = FetchCA(ctx, addr, Fingerprint(s.Leaf()))
	if err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("fingerprint of the leaf: %v", err)
	}
	if _, err := FetchCA(ctx, addr, "sha256:1234"); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("short fingerprint: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "tls")
	p := filepath.Join(dir, "key.pem")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
