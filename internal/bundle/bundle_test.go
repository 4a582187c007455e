package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/bundle/bundletest"
)

// testBundle writes a bundle of n modules whose blobs are distinct bytes.
func testBundle(t *testing.T, n int) ([]byte, map[string][]byte) {
	t.Helper()
	blobs := map[string][]byte{}
	var m Manifest
	for i := 0; i < n; i++ {
		b := bytes.Repeat([]byte(fmt.Sprintf("module %d content ", i)), 1000+i)
		d := archive.Digest(b)
		blobs[d] = b
		m.Modules = append(m.Modules, Entry{Name: fmt.Sprintf("m%d", i), Version: "1.0.0", Digest: d, Size: int64(len(b))})
	}
	var buf bytes.Buffer
	n64, err := Write(&buf, m, func(e Entry) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[e.Digest])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n64 != int64(buf.Len()) {
		t.Fatalf("Write returned %d, wrote %d", n64, buf.Len())
	}
	return buf.Bytes(), blobs
}

func TestRoundTrip(t *testing.T) {
	b, blobs := testBundle(t, 3)
	got := map[string][]byte{}
	m, err := Read(bytes.NewReader(b), func(d string, size int64, r io.Reader) error {
		c, err := io.ReadAll(r)
		got[d] = c
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Modules) != 3 || m.Format != Format || m.FormatVersion != FormatVersion || m.Created.IsZero() {
		t.Fatalf("manifest %+v", m)
	}
	for d, c := range blobs {
		if !bytes.Equal(got[d], c) {
			t.Errorf("blob %s differs", d)
		}
	}
	// Standard tools read it: a plain tar.gz.
	zr, _ := gzip.NewReader(bytes.NewReader(b))
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if len(names) != 4 || names[0] != ManifestName || !strings.HasPrefix(names[1], BlobDir) {
		t.Errorf("entries %v", names)
	}
}

func TestRead_Refusals(t *testing.T) {
	good, blobs := testBundle(t, 2)
	var first string
	for d := range blobs {
		if first == "" || d < first {
			first = d
		}
	}
	blobName := func(names []string) string { return names[1] }
	cases := []struct {
		name string
		data func() []byte
		want string
	}{
		{"empty file", func() []byte { return nil }, "truncated"},
		{"not gzip", func() []byte { return []byte("hello, world") }, "not a dtk module bundle"},
		{"truncated in a blob", func() []byte { return good[:len(good)/2] }, "truncated"},
		{"truncated in the trailer", func() []byte { return good[:len(good)-3] }, "truncated"},
		{"truncated at the tar's end", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string { return n[:2] })
		}, "is missing: the file is truncated or incomplete"},
		{"tampered blob byte", func() []byte {
			b := bytes.Clone(good)
			i := bytes.Index(b, []byte("module 1 content"))
			b[i] = 'M'
			return b
		}, "the file was altered or damaged"},
		{"tampered blob, consistent tar", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				c := bytes.Clone(d[blobName(n)])
				c[0] ^= 1
				d[blobName(n)] = c
				return n
			})
		}, "the file was altered or damaged"},
		{"trailing garbage", func() []byte { return append(bytes.Clone(good), "junk"...) }, "data after the end"},
		{"missing manifest", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string { return n[1:] })
		}, "manifest is missing"},
		{"manifest not first", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string { return []string{n[1], n[0], n[2]} })
		}, "manifest is missing"},
		{"malformed manifest", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				d[ManifestName] = []byte(`{"format": "dtk-module-bundle",`)
				return n
			})
		}, "manifest.json is not well-formed"},
		{"unknown manifest field", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				d[ManifestName] = bytes.Replace(d[ManifestName], []byte(`"modules"`), []byte(`"bogus": 1, "modules"`), 1)
				return n
			})
		}, "unknown field"},
		{"other format version", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				d[ManifestName] = bytes.Replace(d[ManifestName], []byte(`"format_version": 1`), []byte(`"format_version": 9`), 1)
				return n
			})
		}, "format_version 9 is not supported"},
		{"wrong size in manifest", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				d[ManifestName] = bytes.Replace(d[ManifestName], []byte(`"size": 1`), []byte(`"size": 2`), 1)
				return n
			})
		}, "manifest.json says"},
		{"extra entry", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				d["evil.sh"] = []byte("rm -rf /")
				return append(n, "evil.sh")
			})
		}, `unexpected entry "evil.sh"`},
		{"unlisted blob", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string {
				x := []byte("extra")
				name := BlobName(archive.Digest(x))
				d[name] = x
				return append(n, name)
			})
		}, "is not listed in manifest.json"},
		{"blob twice", func() []byte {
			return bundletest.Rewrite(t, good, func(n []string, d map[string][]byte) []string { return append(n, n[1]) })
		}, "appears twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stored := 0
			_, err := Read(bytes.NewReader(c.data()), func(string, int64, io.Reader) error { stored++; return nil })
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an ErrInvalid containing %q", err, c.want)
			}
		})
	}
	_ = first
}

func TestWrite_RefusesBadBlob(t *testing.T) {
	b := []byte("content")
	m := Manifest{Modules: []Entry{{Name: "a", Version: "1.0.0", Digest: archive.Digest(b), Size: int64(len(b))}}}
	for name, serve := range map[string][]byte{"other content": []byte("CONTENT"), "too long": []byte("content!"), "too short": []byte("conten")} {
		_, err := Write(io.Discard, m, func(Entry) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(serve)), nil })
		if err == nil {
			t.Errorf("%s: written", name)
		}
	}
}
