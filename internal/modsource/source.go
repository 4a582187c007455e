package modsource

import (
	"errors"
	"strings"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/limits"
)

// Errors of this package, checked with errors.Is.
var (
	// ErrSyntax is a source that does not parse: a usage error, nothing
	// was fetched.
	ErrSyntax = errors.New("bad module source")
	// ErrNotFound is a tag, digest, repository or git ref that the
	// registry or the git remote does not have.
	ErrNotFound = errors.New("not found")
	// ErrNotModule is an artifact that is not a dtk module: another
	// artifact type, another layer media type, or not exactly one layer.
	ErrNotModule = errors.New("not a dtk module")
	// ErrTooLarge is an artifact that passes one of the Limits. A refusal
	// of the unpacker wraps archive.ErrTooLarge instead.
	ErrTooLarge = errors.New("module too large")
	// ErrUnsafe is a git checkout whose module folder leads out of the
	// clone (through a symbolic link).
	ErrUnsafe = errors.New("unsafe module folder")
)

// Schemes that mark a module source other than a local folder.
const (
	OCIPrefix = "oci://"
	GitPrefix = "git::"
)

// IsRemote says whether s names a module in a registry (oci://) or a git
// repository (git::) rather than a local folder.
func IsRemote(s string) bool {
	return strings.HasPrefix(s, OCIPrefix) || strings.HasPrefix(s, GitPrefix)
}

// Limits bound what a pull downloads and unpacks.
type Limits struct {
	// ManifestBytes bounds the manifest (JSON) fetched from a registry.
	ManifestBytes int64
	// PackedBytes bounds the module layer (the tar.gz archive), checked
	// against its descriptor before the download and held to while
	// downloading.
	PackedBytes int64
	// Unpack bounds what the layer unpacks to.
	Unpack archive.Limits
}

// DefaultLimits are a coordinator's default module bounds
// (internal/limits): what a coordinator would take anyway, so that
// nothing larger is downloaded only to be refused.
func DefaultLimits() Limits {
	lim := limits.Default()
	al := archive.DefaultLimits
	al.MaxTotal, al.MaxFile, al.MaxFiles = lim.ModuleUnpackedBytes, lim.ModuleUnpackedBytes, lim.ModuleFiles
	return Limits{ManifestBytes: 4 << 20, PackedBytes: lim.ModulePackedBytes, Unpack: al}
}
