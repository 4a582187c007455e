// Package archive packs a module folder into a canonical tar.gz (sorted
// entries, no timestamps or owners, so the same folder always gives the same
// bytes and the same digest) and unpacks one safely.
package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Limits bound what Unpack writes, so that a small archive cannot expand
// into a huge one (a gzip bomb: 2 MB of gzip unpacks to 2 GiB of zeros).
// Every field is a bound (zero allows nothing): start from DefaultLimits.
type Limits struct {
	MaxTotal int64 // bytes all files together unpack to
	MaxFile  int64 // bytes one file unpacks to
	MaxFiles int   // entries, files and folders
	MaxDepth int   // path elements in an entry's name (a/b/c is 3)
	MaxName  int   // bytes in one path element
}

// DefaultLimits are the limits of Unpack.
var DefaultLimits = Limits{
	MaxTotal: 1 << 30,
	MaxFile:  1 << 30,
	MaxFiles: 10000,
	MaxDepth: 32,
	MaxName:  255,
}

// ErrTooLarge is returned for an archive that passes one of its Limits.
var ErrTooLarge = errors.New("archive too large")

// Which limit of Limits an archive passed (LimitError.Limit).
const (
	LimitTotal = "total"
	LimitFile  = "file"
	LimitFiles = "files"
	LimitDepth = "depth"
	LimitName  = "name"
)

// LimitError is the ErrTooLarge of one limit, so that a caller can say in
// its own words which setting to raise.
type LimitError struct {
	// Limit is LimitTotal, LimitFile, LimitFiles, LimitDepth or
	// LimitName; Max is its value.
	Limit string
	Max   int64
	msg   string
}

func (e *LimitError) Error() string { return ErrTooLarge.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, ErrTooLarge) hold.
func (e *LimitError) Unwrap() error { return ErrTooLarge }

func tooLarge(limit string, max int64, format string, args ...any) error {
	return &LimitError{Limit: limit, Max: max, msg: fmt.Sprintf(format, args...)}
}

// Digest is "sha256:<hex>" of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Pack returns the canonical tar.gz of dir. Dot-folders (.git) are skipped.
func Pack(dir string) ([]byte, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	sort.Strings(files)
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: mode, Size: info.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrUnsafe is returned for an entry that would land outside the target.
var ErrUnsafe = errors.New("unsafe archive entry")

// Unpack expands a tar.gz into dir (which it creates) within DefaultLimits.
// Only regular files and folders are accepted; paths must stay inside dir.
func Unpack(r io.Reader, dir string) error {
	return DefaultLimits.Unpack(r, dir)
}

// Unpack expands a tar.gz into dir (which it creates), streaming, and
// refuses (ErrTooLarge) an archive that passes one of the limits, before
// writing the entry that would: sizes are checked against the tar headers,
// which the tar reader holds each entry's content to.
func (l Limits) Unpack(r io.Reader, dir string) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("unpack: not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	var total int64
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		name := path.Clean(hdr.Name)
		if name == "." && hdr.Typeflag == tar.TypeDir {
			continue
		}
		if name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("%w: %q", ErrUnsafe, hdr.Name)
		}
		if entries++; entries > l.MaxFiles {
			return tooLarge(LimitFiles, int64(l.MaxFiles), "the archive holds more than %d entries; the limit is %d", l.MaxFiles, l.MaxFiles)
		}
		elems := strings.Split(name, "/")
		if len(elems) > l.MaxDepth {
			return tooLarge(LimitDepth, int64(l.MaxDepth), "%q is %d levels deep; the limit is %d", name, len(elems), l.MaxDepth)
		}
		for _, e := range elems {
			if len(e) > l.MaxName {
				return tooLarge(LimitName, int64(l.MaxName), "a name in %.80q is %d bytes long; the limit is %d", name, len(e), l.MaxName)
			}
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("%w: %q is not a regular file", ErrUnsafe, hdr.Name)
		}
		if hdr.Size > l.MaxFile {
			return tooLarge(LimitFile, l.MaxFile, "%q holds %s; the limit is %s a file", name, size(hdr.Size), size(l.MaxFile))
		}
		if total += hdr.Size; total > l.MaxTotal {
			return tooLarge(LimitTotal, l.MaxTotal, "the archive unpacks to more than %s; the limit is %s in all", size(l.MaxTotal), size(l.MaxTotal))
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, hdr.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
	}
}

// size formats n bytes for a message: "1 GiB", "64 KiB", "1000 bytes".
func size(n int64) string {
	for _, u := range []struct {
		unit  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.unit)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
