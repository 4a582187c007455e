// Package bundletest helps tests build damaged module bundles.
package bundletest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

// Rewrite re-tars a bundle with its entries edited: edit gets the entry
// names in order and their contents, and returns the names to write.
func Rewrite(t testing.TB, b []byte, edit func(names []string, data map[string][]byte) []string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		data[h.Name] = c
	}
	names = edit(names, data)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data[n])), Typeflag: tar.TypeReg})
		tw.Write(data[n])
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}
