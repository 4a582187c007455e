// Package bundle reads and writes module bundles: one file that carries
// modules (their archives exactly as pushed, container image tarballs
// included, since they are files in the module folder) with their digests
// between clusters, and across an air gap.
//
// A bundle is a gzip stream (stored, not compressed: the module archives
// are gzip already; the gzip trailer's CRC and length make any truncation
// detectable) of one tar with, in this order:
//
//	manifest.json              Manifest: format, format version, created, modules
//	blobs/sha256/<hex>         each module archive once, named by its digest
//
// A signed bundle (dtkctl bundle export --sign-key) is format_version 2:
// its manifest carries a signature over itself (internal/signing), which
// through the digests covers every archive. Unsigned bundles stay
// format_version 1, so that older readers still take them, and refuse a
// signed one by its version rather than by an unknown field.
//
// Read checks a whole bundle as it streams: the manifest first and well
// formed, every listed blob present once with the listed size and digest,
// nothing else, and the stream complete.
package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Format names the file kind in the manifest; FormatVersion is the layout
// of an unsigned bundle and FormatVersionSigned that of a signed one, the
// two this code writes and reads.
const (
	Format              = "dtk-module-bundle"
	FormatVersion       = 1
	FormatVersionSigned = 2
	ManifestName        = "manifest.json"
	BlobDir             = "blobs/sha256/"
	// MaxManifest bounds the manifest's size.
	MaxManifest = 16 << 20
	// MaxModules bounds how many modules one bundle lists.
	MaxModules = 10000
)

// Manifest is manifest.json.
type Manifest struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Created       time.Time `json:"created"`
	// CreatedBy names the tool that wrote the bundle ("dtkctl v1.2.3").
	CreatedBy string  `json:"created_by,omitempty"`
	Modules   []Entry `json:"modules"`
	// Signature is set in a signed bundle (format_version 2) only.
	Signature *Signature `json:"signature,omitempty"`
}

// Signature is a manifest's signature: who signed it with which key, and
// the signature itself (internal/signing makes and checks it).
type Signature struct {
	KeyID     string `json:"key_id"`
	Signer    string `json:"signer"`
	Algorithm string `json:"algorithm"`
	// SignedAt is RFC 3339, as written.
	SignedAt string `json:"signed_at"`
	// Signature is the standard base64 of the signature bytes.
	Signature string `json:"signature"`
}

// Entry is one module of a bundle: its archive is the blob named Digest.
type Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
}

// Ref is NAME@VERSION.
func (e Entry) Ref() string { return e.Name + "@" + e.Version }

// ErrInvalid wraps every reason a bundle is refused.
var ErrInvalid = errors.New("invalid bundle")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// BlobName is the tar entry name of a digest's blob.
func BlobName(digest string) string {
	return BlobDir + strings.TrimPrefix(digest, "sha256:")
}

// CheckDigest reports whether d is "sha256:" and 64 lowercase hex digits.
func CheckDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex digits>", d)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex digits>", d)
	}
	return nil
}

// Check validates a manifest on its own: format, version, and every entry.
func (m *Manifest) Check() error {
	if m.Format != Format {
		return invalidf("%s: format is %q, want %q (not a dtk module bundle)", ManifestName, m.Format, Format)
	}
	switch {
	case m.FormatVersion != FormatVersion && m.FormatVersion != FormatVersionSigned:
		return invalidf("%s: format_version %d is not supported (this dtkctl reads %d and %d)", ManifestName, m.FormatVersion, FormatVersion, FormatVersionSigned)
	case m.FormatVersion == FormatVersion && m.Signature != nil:
		return invalidf("%s: format_version %d carries no signature, but this manifest has one", ManifestName, FormatVersion)
	case m.FormatVersion == FormatVersionSigned && m.Signature == nil:
		return invalidf("%s: format_version %d is a signed bundle, but its signature is missing", ManifestName, FormatVersionSigned)
	case m.Signature != nil && (m.Signature.KeyID == "" || m.Signature.Algorithm == "" || m.Signature.SignedAt == "" || m.Signature.Signature == ""):
		return invalidf("%s: the signature needs key_id, algorithm, signed_at and signature", ManifestName)
	}
	if len(m.Modules) > MaxModules {
		return invalidf("%s lists %d modules, more than %d", ManifestName, len(m.Modules), MaxModules)
	}
	refs := map[string]bool{}
	sizes := map[string]int64{}
	for i, e := range m.Modules {
		where := fmt.Sprintf("%s: modules[%d]", ManifestName, i)
		if e.Name == "" || e.Version == "" || strings.ContainsAny(e.Name+e.Version, "@/ \t\n") {
			return invalidf("%s: name %q and version %q must both be set, without '@', '/' or spaces", where, e.Name, e.Version)
		}
		if err := CheckDigest(e.Digest); err != nil {
			return invalidf("%s (%s): %v", where, e.Ref(), err)
		}
		if e.Size < 0 {
			return invalidf("%s (%s): size %d is negative", where, e.Ref(), e.Size)
		}
		if refs[e.Ref()] {
			return invalidf("%s: %s is listed twice", where, e.Ref())
		}
		refs[e.Ref()] = true
		if s, ok := sizes[e.Digest]; ok && s != e.Size {
			return invalidf("%s (%s): blob %s is listed with two sizes", where, e.Ref(), e.Digest)
		}
		sizes[e.Digest] = e.Size
	}
	return nil
}

// Write writes a bundle of m's modules to w. open returns the content of a
// module's blob; Write checks its size and digest while copying and fails
// on a mismatch. Each distinct blob is written once. It returns the
// number of bytes written.
//
// A manifest with a Signature is written as format_version 2: sign it
// (internal/signing) with everything else final, Created included.
func Write(w io.Writer, m Manifest, open func(Entry) (io.ReadCloser, error)) (int64, error) {
	m.Format, m.FormatVersion = Format, FormatVersion
	if m.Signature != nil {
		m.FormatVersion = FormatVersionSigned
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	if m.Modules == nil {
		m.Modules = []Entry{}
	}
	if err := m.Check(); err != nil {
		return 0, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, err
	}
	mb = append(mb, '\n')
	cw := &countWriter{w: w}
	gz, _ := gzip.NewWriterLevel(cw, gzip.NoCompression)
	tw := tar.NewWriter(gz)
	mtime := m.Created.Truncate(time.Second)
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(ManifestName, int64(len(mb)))); err != nil {
		return cw.n, err
	}
	if _, err := tw.Write(mb); err != nil {
		return cw.n, err
	}
	done := map[string]bool{}
	for _, e := range m.Modules {
		if done[e.Digest] {
			continue
		}
		done[e.Digest] = true
		if err := writeBlob(tw, hdr(BlobName(e.Digest), e.Size), e, open); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	if err := gz.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func writeBlob(tw *tar.Writer, hdr *tar.Header, e Entry, open func(Entry) (io.ReadCloser, error)) error {
	rc, err := open(e)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Ref(), err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	// One byte more than expected shows a blob that is too long.
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(rc, e.Size+1))
	if err != nil && !errors.Is(err, tar.ErrWriteTooLong) {
		return fmt.Errorf("%s: copy blob %s: %w", e.Ref(), e.Digest, err)
	}
	if n != e.Size || errors.Is(err, tar.ErrWriteTooLong) {
		return fmt.Errorf("%s: blob %s has %d bytes or more, the module lists %d", e.Ref(), e.Digest, n, e.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != e.Digest {
		return fmt.Errorf("%s: blob content is %s, the module lists %s: the coordinator's copy is damaged", e.Ref(), got, e.Digest)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Read reads and checks a whole bundle from r. For each blob it calls
// store (when not nil) with the blob's reader; store must read it to the
// end or return an error. A blob's digest is known to be right only once
// Read returns nil: a caller that keeps what store received must drop it
// when Read fails. Every error but store's own and the reader's wraps
// ErrInvalid and names what is wrong.
func Read(r io.Reader, store func(digest string, size int64, r io.Reader) error) (*Manifest, error) {
	// gzip reads br byte by byte (it is an io.ByteReader), so that br is
	// left just after the gzip member and trailing data shows.
	br := bufio.NewReaderSize(r, 1<<16)
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, readErr(err, "not a dtk module bundle (not gzip)")
	}
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err == io.EOF {
		return nil, invalidf("the bundle is empty: no %s", ManifestName)
	}
	if err != nil {
		return nil, readErr(err, "not a dtk module bundle (not a tar inside)")
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, invalidf("the first entry is %q, not %s: not a dtk module bundle, or its manifest is missing", hdr.Name, ManifestName)
	}
	if hdr.Size > MaxManifest {
		return nil, invalidf("%s is %d bytes, more than %d", ManifestName, hdr.Size, MaxManifest)
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return nil, readErr(err, "read "+ManifestName)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, invalidf("%s is not well-formed: %v", ManifestName, err)
	}
	if dec.More() {
		return nil, invalidf("%s is not well-formed: data after the JSON object", ManifestName)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	want := map[string]int64{}     // digest → size
	users := map[string][]string{} // digest → refs, for messages
	for _, e := range m.Modules {
		want[e.Digest] = e.Size
		users[e.Digest] = append(users[e.Digest], e.Ref())
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(err, "read the entry after "+lastName(seen))
		}
		hexd, ok := strings.CutPrefix(hdr.Name, BlobDir)
		digest := "sha256:" + hexd
		if !ok || CheckDigest(digest) != nil || hdr.Typeflag != tar.TypeReg {
			return nil, invalidf("unexpected entry %q: a bundle holds only %s and %s<hex> files", hdr.Name, ManifestName, BlobDir)
		}
		size, listed := want[digest]
		if !listed {
			return nil, invalidf("blob %s is not listed in %s", digest, ManifestName)
		}
		what := fmt.Sprintf("blob %s (%s)", digest, strings.Join(users[digest], ", "))
		if seen[digest] {
			return nil, invalidf("%s appears twice", what)
		}
		seen[digest] = true
		if hdr.Size != size {
			return nil, invalidf("%s is %d bytes, %s says %d", what, hdr.Size, ManifestName, size)
		}
		h := sha256.New()
		vr := &hashReader{r: tr, h: h}
		if store != nil {
			if err := store(digest, size, vr); err != nil {
				if vr.err != nil {
					return nil, readErr(vr.err, "read "+what)
				}
				return nil, err
			}
		}
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return nil, readErr(err, "read "+what)
		}
		if vr.n != size {
			return nil, invalidf("%s: read %d bytes, want %d", what, vr.n, size)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return nil, invalidf("%s: content has digest %s: the file was altered or damaged", what, got)
		}
	}
	for _, e := range m.Modules {
		if !seen[e.Digest] {
			return nil, invalidf("blob %s of %s is missing: the file is truncated or incomplete", e.Digest, e.Ref())
		}
	}
	// The rest of the gzip stream: only the tar's zero padding, then a
	// complete trailer (CRC and length) and nothing after it.
	var zero [4096]byte
	for {
		n, err := gz.Read(zero[:])
		if !allZero(zero[:n]) {
			return nil, invalidf("data after the end of the bundle's tar")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(err, "read the end of the bundle")
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err != nil {
			return nil, readErr(err, "read the end of the bundle")
		}
		return nil, invalidf("data after the end of the bundle's gzip stream")
	}
	return &m, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func lastName(seen map[string]bool) string {
	if len(seen) == 0 {
		return ManifestName
	}
	return fmt.Sprintf("%d blobs", len(seen))
}

// readErr describes a failure to read the stream: a truncated file, a
// damaged gzip stream, or the underlying reader's own error (returned as
// is, so that a caller tells a broken connection from a bad file).
func readErr(err error, what string) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), err == io.EOF:
		return invalidf("%s: the file is truncated (it ends early)", what)
	case errors.Is(err, gzip.ErrChecksum):
		return invalidf("%s: the gzip checksum does not match: the file is damaged", what)
	case errors.Is(err, gzip.ErrHeader):
		return invalidf("%s: %v", what, err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrInsecurePath):
		return invalidf("%s: the tar structure is damaged (%v)", what, err)
	case isFlate(err):
		return invalidf("%s: the compressed stream is damaged: %v", what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

type hashReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (v *hashReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err != nil && err != io.EOF {
		v.err = err
	}
	return n, err
}

func isFlate(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce)
}
