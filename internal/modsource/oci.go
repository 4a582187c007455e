package modsource

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/dtkhq/dtk/internal/limits"
)

// The media types of a module artifact (docs/modules.md, "Sharing
// modules"): an OCI image manifest whose artifactType is ArtifactType,
// with the empty config and one layer of LayerMediaType, the module
// archive exactly as internal/archive packs it.
const (
	ArtifactType   = "application/vnd.dtk.module.v1"
	LayerMediaType = "application/vnd.dtk.module.layer.v1.tar+gzip"
)

// OCIRef is a parsed oci://REGISTRY/REPOSITORY[:TAG|@DIGEST].
type OCIRef struct {
	Registry   string // host, with its port if any
	Repository string
	Tag        string // "" when there is a Digest, or nothing after the repository
	Digest     string // "sha256:..." or ""
}

// ParseOCI parses s, which starts with oci://. A reference with both a tag
// and a digest (repo:tag@sha256:...) names the digest.
func ParseOCI(s string) (OCIRef, error) {
	rest, ok := strings.CutPrefix(s, OCIPrefix)
	if !ok {
		return OCIRef{}, fmt.Errorf("%w: %q does not start with %s", ErrSyntax, s, OCIPrefix)
	}
	if rest == "" || !strings.Contains(rest, "/") || strings.HasSuffix(rest, ":") || strings.HasSuffix(rest, "@") {
		return OCIRef{}, fmt.Errorf("%w: %q: give %sREGISTRY/REPOSITORY[:TAG] or %sREGISTRY/REPOSITORY@sha256:DIGEST", ErrSyntax, s, OCIPrefix, OCIPrefix)
	}
	r, err := registry.ParseReference(rest)
	if err != nil {
		return OCIRef{}, fmt.Errorf("%w: %q: %v (repositories are lowercase: letters, digits and . _ - /)", ErrSyntax, s, err)
	}
	ref := OCIRef{Registry: r.Registry, Repository: r.Repository}
	switch {
	case r.Reference == "":
	case strings.Contains(rest, "@"):
		ref.Digest = r.Reference
	default:
		ref.Tag = r.Reference
	}
	return ref, nil
}

// String is the reference as oci://REGISTRY/REPOSITORY[:TAG|@DIGEST].
func (r OCIRef) String() string {
	s := OCIPrefix + r.Registry + "/" + r.Repository
	switch {
	case r.Digest != "":
		s += "@" + r.Digest
	case r.Tag != "":
		s += ":" + r.Tag
	}
	return s
}

// reference is the tag or digest, as the registry API takes it.
func (r OCIRef) reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// ValidTag reports whether tag is a valid OCI tag (a module version with
// build metadata, 1.2.0+build, is not: '+' is not allowed).
func ValidTag(tag string) bool {
	return (registry.Reference{Reference: tag}).ValidateReferenceAsTag() == nil
}

// RegistryOptions say how to reach and log in to a registry.
type RegistryOptions struct {
	// Username and Password log in with these; when Username is empty,
	// the credentials come from the Docker configuration
	// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), its
	// credential helpers included, or there are none.
	Username string
	Password string
	// CAFile is a PEM file of CA certificates trusted besides the
	// system's roots.
	CAFile string
	// PlainHTTP talks http, not https: for a test registry on loopback.
	PlainHTTP bool
	// UserAgent is sent with every request.
	UserAgent string
}

// repository is the remote repository of ref, with opts' credentials,
// trusted CAs and scheme.
func (o RegistryOptions) repository(ref OCIRef) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	repo.PlainHTTP = o.PlainHTTP
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry CA: no PEM certificate in %s", o.CAFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	var cred auth.CredentialFunc
	if o.Username != "" {
		cred = auth.StaticCredential(ref.Registry, auth.Credential{Username: o.Username, Password: o.Password})
	} else {
		store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("registry credentials from the Docker configuration: %w", err)
		}
		cred = credentials.Credential(store)
	}
	header := http.Header{}
	if o.UserAgent != "" {
		header.Set("User-Agent", o.UserAgent)
	}
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: retry.NewTransport(tr)},
		Header:     header,
		Cache:      auth.NewCache(),
		Credential: cred,
	}
	return repo, nil
}

// Artifact describes a module artifact in a registry.
type Artifact struct {
	// Reference is the artifact as asked for: oci://REGISTRY/REPO:TAG or
	// @DIGEST.
	Reference string `json:"reference"`
	// Digest is the manifest's digest (pull by it: REPO@DIGEST).
	Digest string `json:"digest"`
	// ArchiveDigest and Size are the layer's: the module archive's
	// digest, the one a coordinator records, and its bytes.
	ArchiveDigest string `json:"archive_digest"`
	Size          int64  `json:"size"`
	// Module, Version and Created are the manifest's annotations.
	Module  string `json:"module,omitempty"`
	Version string `json:"version,omitempty"`
	Created string `json:"created,omitempty"`
}

// Module is what Publish writes into a manifest's annotations.
type Module struct {
	Name    string
	Version string
	// Created is the time recorded; zero means now.
	Created time.Time
}

// Publish pushes archive (a module packed by internal/archive, unchanged)
// to ref as a module artifact and tags it ref.Tag, which the caller has
// checked. Blobs the registry has already are not sent again.
func Publish(ctx context.Context, ref OCIRef, archive []byte, mod Module, opts RegistryOptions) (*Artifact, error) {
	if ref.Tag == "" || ref.Digest != "" {
		return nil, fmt.Errorf("%w: publish to a tag, not %s", ErrSyntax, ref)
	}
	repo, err := opts.repository(ref)
	if err != nil {
		return nil, err
	}
	created := mod.Created
	if created.IsZero() {
		created = time.Now()
	}
	store := memory.New()
	layer := content.NewDescriptorFromBytes(LayerMediaType, archive)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: mod.Name + "-" + mod.Version + ".tar.gz"}
	if err := store.Push(ctx, layer, bytes.NewReader(archive)); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	annotations := map[string]string{
		ocispec.AnnotationTitle:   mod.Name,
		ocispec.AnnotationVersion: mod.Version,
		ocispec.AnnotationCreated: created.UTC().Format(time.RFC3339),
	}
	desc, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return nil, fmt.Errorf("publish: pack the manifest: %w", err)
	}
	if err := store.Tag(ctx, desc, ref.Tag); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if _, err := oras.Copy(ctx, store, ref.Tag, repo, ref.Tag, oras.DefaultCopyOptions); err != nil {
		return nil, fmt.Errorf("publish to %s: %w", ref, registryError(err))
	}
	return &Artifact{Reference: ref.String(), Digest: desc.Digest.String(), ArchiveDigest: layer.Digest.String(),
		Size: layer.Size, Module: mod.Name, Version: mod.Version, Created: annotations[ocispec.AnnotationCreated]}, nil
}

// PullOCI fetches the module artifact ref names and unpacks its archive
// into dir (created; it should not exist): the manifest must be a dtk
// module's, the layer within lim.PackedBytes (checked before the
// download) and its digest; the archive is unpacked within lim.Unpack
// with internal/archive's checks.
func PullOCI(ctx context.Context, ref OCIRef, dir string, opts RegistryOptions, lim Limits) (*Artifact, error) {
	if ref.reference() == "" {
		return nil, fmt.Errorf("%w: %s names no tag or digest: add :TAG (the module's version) or @sha256:DIGEST", ErrSyntax, ref)
	}
	repo, err := opts.repository(ref)
	if err != nil {
		return nil, err
	}
	desc, rc, err := repo.FetchReference(ctx, ref.reference())
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, registryError(err))
	}
	defer rc.Close()
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("pull %s: %w: it is a %s, not an OCI image manifest", ref, ErrNotModule, desc.MediaType)
	}
	if desc.Size > lim.ManifestBytes {
		return nil, fmt.Errorf("pull %s: %w: the manifest is %s; the limit is %s", ref, ErrTooLarge, limits.Size(desc.Size), limits.Size(lim.ManifestBytes))
	}
	b, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, fmt.Errorf("pull %s: manifest: %w", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("pull %s: %w: the manifest does not decode: %v", ref, ErrNotModule, err)
	}
	layer, err := moduleLayer(m)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if layer.Size > lim.PackedBytes {
		return nil, fmt.Errorf("pull %s: %w: the module archive is %s; dtkctl pulls at most %s (a coordinator's default %s)",
			ref, ErrTooLarge, limits.Size(layer.Size), limits.Size(lim.PackedBytes), limits.KeyModulePackedBytes)
	}
	art := &Artifact{Reference: ref.String(), Digest: desc.Digest.String(), ArchiveDigest: layer.Digest.String(), Size: layer.Size,
		Module: m.Annotations[ocispec.AnnotationTitle], Version: m.Annotations[ocispec.AnnotationVersion], Created: m.Annotations[ocispec.AnnotationCreated]}
	if err := fetchLayer(ctx, repo, layer, dir, lim); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return art, nil
}

// moduleLayer checks that m is a dtk module's manifest and returns its
// one layer.
func moduleLayer(m ocispec.Manifest) (ocispec.Descriptor, error) {
	// The artifact type is the manifest's artifactType (image-spec 1.1),
	// or, from a client that writes image-spec 1.0 manifests, the config's
	// media type.
	at := m.ArtifactType
	if at == "" {
		at = m.Config.MediaType
	}
	switch {
	case m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest:
		return ocispec.Descriptor{}, fmt.Errorf("%w: the manifest is a %s", ErrNotModule, m.MediaType)
	case at != ArtifactType:
		return ocispec.Descriptor{}, fmt.Errorf("%w: its artifact type is %q, not %s (publish modules with dtkctl module publish)", ErrNotModule, at, ArtifactType)
	case len(m.Layers) != 1:
		return ocispec.Descriptor{}, fmt.Errorf("%w: it has %d layers; a module has one", ErrNotModule, len(m.Layers))
	case m.Layers[0].MediaType != LayerMediaType:
		return ocispec.Descriptor{}, fmt.Errorf("%w: its layer is a %s, not %s", ErrNotModule, m.Layers[0].MediaType, LayerMediaType)
	case m.Layers[0].Digest.Validate() != nil || m.Layers[0].Digest.Algorithm() != digest.SHA256 || m.Layers[0].Size < 0:
		return ocispec.Descriptor{}, fmt.Errorf("%w: its layer descriptor is invalid (digest %q, size %d)", ErrNotModule, m.Layers[0].Digest, m.Layers[0].Size)
	}
	return m.Layers[0], nil
}

// fetchLayer downloads layer into a scratch file beside dir, held to its
// size and digest, and unpacks it into dir.
func fetchLayer(ctx context.Context, repo *remote.Repository, layer ocispec.Descriptor, dir string, lim Limits) error {
	rc, err := repo.Fetch(ctx, layer)
	if err != nil {
		return fmt.Errorf("module layer: %w", registryError(err))
	}
	defer rc.Close()
	f, err := os.CreateTemp(filepath.Dir(dir), ".dtk-layer-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	vr := content.NewVerifyReader(rc, layer)
	if _, err := io.Copy(f, vr); err != nil {
		return fmt.Errorf("module layer: %w", err)
	}
	if err := vr.Verify(); err != nil {
		return fmt.Errorf("module layer: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := lim.Unpack.Unpack(f, dir); err != nil {
		return fmt.Errorf("module layer: %w", err)
	}
	return nil
}

// registryError makes a registry's refusal say what to do: ErrNotFound
// for a missing tag, digest or repository, a hint for a failed login.
func registryError(err error) error {
	var re *errcode.ErrorResponse
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%w: the registry has no such tag, digest or repository (%v)", ErrNotFound, err)
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: the registry has no such tag, digest or repository (%v)", ErrNotFound, err)
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &re) && (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w; log in with docker login (the Docker configuration's credentials are used) or give --registry-username and --registry-password-stdin", err)
	}
	return err
}
