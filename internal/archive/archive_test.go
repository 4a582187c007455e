package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPack_SameFolderSameBytes(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "scripts"), 0o755)
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("module {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "scripts", "run.sh"), []byte("echo hi\n"), 0o755)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref\n"), 0o644)
	a, err := Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Touch a file's time: the archive must not change.
	os.Chtimes(filepath.Join(dir, "main.hcl"), time0, time0)
	b, _ := Pack(dir)
	if !bytes.Equal(a, b) {
		t.Fatal("packing the same folder twice gave different bytes")
	}
	out := t.TempDir()
	if err := Unpack(bytes.NewReader(a), out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "scripts", "run.sh")); string(got) != "echo hi\n" {
		t.Fatalf("run.sh = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(out, "scripts", "run.sh")); fi.Mode()&0o111 == 0 {
		t.Fatal("executable bit lost")
	}
	if _, err := os.Stat(filepath.Join(out, ".git")); !os.IsNotExist(err) {
		t.Fatal("a dot-folder was packed")
	}
}

func tarGz(t *testing.T, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestUnpack_RefusesEntriesOutsideTheFolder(t *testing.T) {
	for name, h := range map[string]*tar.Header{
		"parent":   {Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"nested":   {Name: "a/../../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"absolute": {Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"symlink":  {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"device":   {Name: "dev", Typeflag: tar.TypeChar},
	} {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			err := Unpack(bytes.NewReader(tarGz(t, h)), out)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), "evil")); err == nil {
				t.Fatal("a file was written outside the folder")
			}
		})
	}
}

func TestUnpack_NotGzip(t *testing.T) {
	if err := Unpack(bytes.NewReader([]byte("plain text")), t.TempDir()); err == nil {
		t.Fatal("plain text accepted as an archive")
	}
}

var time0 = time.Unix(1000000000, 0)
