package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peakRSS resets the process's peak resident set size where Linux allows it
// and returns a function giving the growth of the peak since, in bytes.
func peakRSS(t *testing.T) func() int64 {
	t.Helper()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // best effort
	before := vmHWM(t)
	return func() int64 { return vmHWM(t) - before }
}

func vmHWM(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/self/status")
	return 0
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// bomb streams a module archive holding main.hcl and one zero-filled file of
// size bytes, gzipped at the best compression, as Unpack reads it: it is
// never whole in memory or on disk. The returned function stops the writer
// and gives the compressed bytes produced.
func bomb(size int64) (io.Reader, func() int64) {
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gz, _ := gzip.NewWriterLevel(cw, gzip.BestCompression)
		tw := tar.NewWriter(gz)
		hcl := []byte("module {\n  name    = \"bomb\"\n  version = \"1.0.0\"\n}\n")
		err := tw.WriteHeader(&tar.Header{Name: "main.hcl", Mode: 0o644, Size: int64(len(hcl)), Typeflag: tar.TypeReg})
		if err == nil {
			_, err = tw.Write(hcl)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "assets/zero.bin", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
		}
		zeros := make([]byte, 1<<20)
		for left := size; err == nil && left > 0; left -= int64(len(zeros)) {
			_, err = tw.Write(zeros[:min(left, int64(len(zeros)))])
		}
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = gz.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, func() int64 {
		pr.CloseWithError(errors.New("stop"))
		<-done
		return cw.n
	}
}

func TestUnpack_RefusesGzipBomb(t *testing.T) {
	growth := peakRSS(t)
	start := time.Now()
	r, stop := bomb(2 << 30)
	out := t.TempDir()
	err := Unpack(r, out)
	compressed := stop()
	took := time.Since(start)
	grew := growth()
	t.Logf("refused after reading %d compressed bytes in %v; peak RSS grew %d MiB: %v", compressed, took, grew>>20, err)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "the limit is 1 GiB") {
		t.Errorf("Unpack: %v, want ErrTooLarge naming the 1 GiB limit", err)
	}
	if grew > 100<<20 {
		t.Errorf("peak RSS grew %d MiB unpacking the bomb", grew>>20)
	}
	var written int64
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				written += info.Size()
			}
		}
		return nil
	})
	if written > 1<<20 {
		t.Errorf("%d bytes written before refusing", written)
	}
}

func TestUnpack_Limits(t *testing.T) {
	file := func(name string, size int) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(size), Mode: 0o644}
	}
	small := Limits{MaxTotal: 1000, MaxFile: 600, MaxFiles: 3, MaxDepth: 3, MaxName: 20}
	for _, c := range []struct {
		name string
		hdrs []*tar.Header
		want string // "" when accepted
	}{
		{"within", []*tar.Header{file("a", 500), file("b/c/d", 500), {Name: "b/", Typeflag: tar.TypeDir, Mode: 0o755}}, ""},
		{"total", []*tar.Header{file("a", 500), file("b", 400), file("c", 200)}, "unpacks to more than 1000 bytes; the limit is 1000 bytes"},
		{"file", []*tar.Header{file("a", 601)}, `"a" holds 601 bytes; the limit is 600 bytes a file`},
		{"count", []*tar.Header{file("a", 1), file("b", 1), file("c", 1), file("d", 1)}, "more than 3 entries; the limit is 3"},
		{"depth", []*tar.Header{file("a/b/c/d", 1)}, `"a/b/c/d" is 4 levels deep; the limit is 3`},
		{"name", []*tar.Header{file(strings.Repeat("n", 21), 1)}, "21 bytes long; the limit is 20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := small.Unpack(bytes.NewReader(tarGz(t, c.hdrs...)), t.TempDir())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want ErrTooLarge with %q", err, c.want)
			}
			which := map[string]string{"total": LimitTotal, "file": LimitFile, "count": LimitFiles, "depth": LimitDepth, "name": LimitName}[c.name]
			var le *LimitError
			if c.want != "" && (!errors.As(err, &le) || le.Limit != which) {
				t.Fatalf("got %#v, want a LimitError for %q", err, which)
			}
		})
	}
}
