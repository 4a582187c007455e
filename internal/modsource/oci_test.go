package modsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/modsource/ocitest"
)

// This package's registries: a TLS one with a login, a plain-HTTP one.
const (
	tlsRegistryIP   = "127.0.0.135"
	plainRegistryIP = "127.0.0.139"
)

// writeTree writes files (name → content) under dir; a name ending in
// "*" is written executable, without the star.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%d files, want %d: %v vs %v", len(got), len(want), got, want)
	}
	for name, d := range want {
		if got[name] != d {
			t.Errorf("%s: digest %q, want %q", name, got[name], d)
		}
	}
}

// A module folder with a signature file, an executable, a nested asset
// and bytes that are not text.
func sampleModule(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "web")
	writeTree(t, dir, map[string]string{
		"module.hcl":              "module \"web\" {\n  version = \"1.2.0\"\n}\n",
		"dtk.sig":                 "untrusted comment: not a real signature\nRWQ\x00\x01\xfe\xff binary\r\n",
		"scripts/install.sh*":     "#!/bin/sh\necho hi\n",
		"templates/site/index.in": strings.Repeat("héllo\n", 1000),
	})
	return dir
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Publish then pull through a real registry (TLS, htpasswd login): the
// files come back byte for byte, dtk.sig and the executable bit included;
// the manifest has the documented artifact type, media types and
// annotations; the layer is the archive exactly.
func TestPublishPullOCI_RoundTrip(t *testing.T) {
	reg := ocitest.Start(t, tlsRegistryIP, ocitest.Options{})
	ctx := ctxT(t)
	src := sampleModule(t)
	b, err := archive.Pack(src)
	if err != nil {
		t.Fatal(err)
	}
	opts := RegistryOptions{Username: reg.Username, Password: reg.Password, CAFile: reg.CAFile, UserAgent: "dtkctl/test"}
	ref, _ := ParseOCI("oci://" + reg.Host + "/dtk/web:1.2.0")
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pub, err := Publish(ctx, ref, b, Module{Name: "web", Version: "1.2.0", Created: created}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ArchiveDigest != archive.Digest(b) || pub.Size != int64(len(b)) || pub.Reference != ref.String() {
		t.Fatalf("published %+v; archive %s, %d bytes", pub, archive.Digest(b), len(b))
	}

	// The manifest as the registry serves it.
	req, _ := http.NewRequest("GET", reg.URL()+"/v2/dtk/web/manifests/1.2.0", nil)
	req.SetBasicAuth(reg.Username, reg.Password)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != pub.Digest {
		t.Fatalf("GET manifest: %d, digest %q (published %s)\n%s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), pub.Digest, raw)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != "application/vnd.dtk.module.v1" ||
		m.Config.MediaType != ocispec.MediaTypeEmptyJSON || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != "application/vnd.dtk.module.layer.v1.tar+gzip" || m.Layers[0].Digest.String() != archive.Digest(b) ||
		m.Layers[0].Annotations[ocispec.AnnotationTitle] != "web-1.2.0.tar.gz" {
		t.Fatalf("manifest:\n%s", raw)
	}
	if m.Annotations[ocispec.AnnotationTitle] != "web" || m.Annotations[ocispec.AnnotationVersion] != "1.2.0" ||
		m.Annotations[ocispec.AnnotationCreated] != "2026-03-01T12:00:00Z" {
		t.Fatalf("annotations: %v", m.Annotations)
	}

	// Pull by tag and by digest.
	for _, s := range []string{ref.String(), "oci://" + reg.Host + "/dtk/web@" + pub.Digest} {
		r, _ := ParseOCI(s)
		dst := filepath.Join(t.TempDir(), "pulled")
		art, err := PullOCI(ctx, r, dst, opts, DefaultLimits())
		if err != nil {
			t.Fatalf("pull %s: %v", s, err)
		}
		if art.Digest != pub.Digest || art.ArchiveDigest != pub.ArchiveDigest || art.Module != "web" || art.Version != "1.2.0" {
			t.Fatalf("pulled %+v, published %+v", art, pub)
		}
		sameTree(t, ocitest.TreeDigests(t, src), ocitest.TreeDigests(t, dst))
		again, _ := archive.Pack(dst)
		if !bytes.Equal(again, b) {
			t.Fatal("the pulled folder packs to other bytes than the published archive")
		}
	}

	// Publishing the same module again sends no blob anew and gives the
	// same manifest (the created time fixed).
	if pub2, err := Publish(ctx, ref, b, Module{Name: "web", Version: "1.2.0", Created: created}, opts); err != nil || pub2.Digest != pub.Digest {
		t.Fatalf("republish: %+v, %v", pub2, err)
	}
}

// Credentials come from the Docker configuration ($DOCKER_CONFIG) when no
// user is given; without any, or with a wrong password, the registry
// refuses and the error says how to log in.
func TestPullOCI_Credentials(t *testing.T) {
	reg := ocitest.Start(t, tlsRegistryIP, ocitest.Options{})
	ctx := ctxT(t)
	b, _ := archive.Pack(sampleModule(t))
	ref, _ := ParseOCI("oci://" + reg.Host + "/dtk/web:1.2.0")

	t.Setenv("DOCKER_CONFIG", reg.DockerConfig)
	if _, err := Publish(ctx, ref, b, Module{Name: "web", Version: "1.2.0"}, RegistryOptions{CAFile: reg.CAFile}); err != nil {
		t.Fatalf("publish with the Docker configuration's credentials: %v", err)
	}
	if _, err := PullOCI(ctx, ref, filepath.Join(t.TempDir(), "m"), RegistryOptions{CAFile: reg.CAFile}, DefaultLimits()); err != nil {
		t.Fatalf("pull with the Docker configuration's credentials: %v", err)
	}

	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no config.json: no credentials
	_, err := PullOCI(ctx, ref, filepath.Join(t.TempDir(), "m"), RegistryOptions{CAFile: reg.CAFile}, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "docker login") || !strings.Contains(err.Error(), "--registry-username") {
		t.Fatalf("pull without credentials: %v", err)
	}
	_, err = PullOCI(ctx, ref, filepath.Join(t.TempDir(), "m"), RegistryOptions{CAFile: reg.CAFile, Username: reg.Username, Password: "wrong"}, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--registry-username") {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	// The registry's certificate is not trusted without its CA.
	_, err = PullOCI(ctx, ref, filepath.Join(t.TempDir(), "m"), RegistryOptions{Username: reg.Username, Password: reg.Password}, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pull without the registry's CA: %v", err)
	}
}

// What is not a dtk module, or too large, or missing, is refused before
// anything is unpacked.
func TestPullOCI_Refusals(t *testing.T) {
	reg := ocitest.Start(t, plainRegistryIP, ocitest.Options{PlainHTTP: true})
	ctx := ctxT(t)
	opts := RegistryOptions{PlainHTTP: true}
	b, _ := archive.Pack(sampleModule(t))
	ref, _ := ParseOCI("oci://" + reg.Host + "/dtk/web:1.2.0")
	if _, err := Publish(ctx, ref, b, Module{Name: "web", Version: "1.2.0"}, opts); err != nil {
		t.Fatal(err)
	}
	// pushOther pushes a manifest of another shape, tagged tag.
	pushOther := func(tag, artifactType string, layers ...ocispec.Descriptor) {
		t.Helper()
		store := memory.New()
		for i, l := range layers {
			data := []byte{byte(i), 'x'}
			layers[i] = content.NewDescriptorFromBytes(l.MediaType, data)
			store.Push(ctx, layers[i], bytes.NewReader(data))
		}
		desc, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{Layers: layers})
		if err != nil {
			t.Fatal(err)
		}
		store.Tag(ctx, desc, tag)
		repo, err := opts.repository(ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := oras.Copy(ctx, store, tag, repo, tag, oras.DefaultCopyOptions); err != nil {
			t.Fatal(err)
		}
	}
	pushOther("helm", "application/vnd.cncf.helm.config.v1+json", ocispec.Descriptor{MediaType: LayerMediaType})
	pushOther("two", ArtifactType, ocispec.Descriptor{MediaType: LayerMediaType}, ocispec.Descriptor{MediaType: LayerMediaType})
	pushOther("tar", ArtifactType, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip})
	pushOther("notgzip", ArtifactType, ocispec.Descriptor{MediaType: LayerMediaType})

	small := DefaultLimits()
	small.PackedBytes = 100
	for _, tc := range []struct {
		tag  string
		lim  Limits
		want error
		msg  string
	}{
		{"helm", DefaultLimits(), ErrNotModule, "application/vnd.cncf.helm.config.v1+json"},
		{"two", DefaultLimits(), ErrNotModule, "2 layers"},
		{"tar", DefaultLimits(), ErrNotModule, ocispec.MediaTypeImageLayerGzip},
		{"notgzip", DefaultLimits(), nil, "not a gzip archive"},
		{"1.2.0", small, ErrTooLarge, "limits.module_packed_bytes"},
		{"9.9.9", DefaultLimits(), ErrNotFound, "no such tag"},
	} {
		r := ref
		r.Tag = tc.tag
		dst := filepath.Join(t.TempDir(), "m")
		_, err := PullOCI(ctx, r, dst, opts, tc.lim)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("pull :%s = %v, want %v mentioning %q", tc.tag, err, tc.want, tc.msg)
		}
		if tc.want != nil {
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("pull :%s wrote %s", tc.tag, dst)
			}
		}
	}
	// A registry repository that does not exist; no tag at all.
	r, _ := ParseOCI("oci://" + reg.Host + "/dtk/nothing:1.0.0")
	if _, err := PullOCI(ctx, r, filepath.Join(t.TempDir(), "m"), opts, DefaultLimits()); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull from a missing repository: %v", err)
	}
	r.Tag = ""
	if _, err := PullOCI(ctx, r, filepath.Join(t.TempDir(), "m"), opts, DefaultLimits()); !errors.Is(err, ErrSyntax) {
		t.Errorf("pull without a tag: %v", err)
	}
}

// A layer that unpacks past the limits is refused by the unpacker.
func TestPullOCI_UnpackLimits(t *testing.T) {
	reg := ocitest.Start(t, plainRegistryIP, ocitest.Options{PlainHTTP: true})
	ctx := ctxT(t)
	opts := RegistryOptions{PlainHTTP: true}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"module.hcl": "x", "big": strings.Repeat("0", 1<<20)})
	b, _ := archive.Pack(dir)
	ref, _ := ParseOCI("oci://" + reg.Host + "/dtk/big:1.0.0")
	if _, err := Publish(ctx, ref, b, Module{Name: "big", Version: "1.0.0"}, opts); err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	lim.Unpack.MaxFile = 1 << 10
	if _, err := PullOCI(ctx, ref, filepath.Join(t.TempDir(), "m"), opts, lim); !errors.Is(err, archive.ErrTooLarge) {
		t.Fatalf("pull = %v, want archive.ErrTooLarge", err)
	}
}
