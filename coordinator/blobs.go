package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// BlobStore keeps content-addressed blobs (module archives) on disk, outside
// the Raft log, under dir/sha256/<hex>.
type BlobStore struct {
	dir string
}

// ErrBadDigest is returned for a malformed digest or content that does not
// match its digest.
var ErrBadDigest = errors.New("bad digest")

// NewBlobStore opens (creating) a blob store in dir.
func NewBlobStore(dir string) (*BlobStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return &BlobStore{dir: dir}, nil
}

func (b *BlobStore) path(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, digest)
	}
	if _, err := hex.DecodeString(hexd); err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, digest)
	}
	return filepath.Join(b.dir, "sha256", hexd), nil
}

// Put stores r's bytes and returns their digest and size. If want is not
// empty the content must match it.
func (b *BlobStore) Put(r io.Reader, want string) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(b.dir, "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("blob store: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("blob store: %w", err)
	}
	digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want != "" && want != digest {
		return "", 0, fmt.Errorf("%w: content is %s, expected %s", ErrBadDigest, digest, want)
	}
	p, _ := b.path(digest)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", 0, fmt.Errorf("blob store: %w", err)
	}
	return digest, size, nil
}

// Open returns a blob's content.
func (b *BlobStore) Open(digest string) (*os.File, error) {
	p, err := b.path(digest)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Has reports whether a blob is stored.
func (b *BlobStore) Has(digest string) bool {
	p, err := b.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Size is a blob's size in bytes (0 when it is not stored).
func (b *BlobStore) Size(digest string) int64 {
	p, err := b.path(digest)
	if err != nil {
		return 0
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
