package modsource

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestIsRemote(t *testing.T) {
	for s, want := range map[string]bool{
		"oci://r.example/web:1.0.0":     true,
		"git::https://g.example/r.git":  true,
		"./web":                         false,
		"web":                           false,
		"/srv/modules/oci:/web":         false,
		"https://g.example/r.git":       false,
		"OCI://r.example/web":           false,
		"git@g.example:org/r.git//web":  false,
		"git:: https://g.example/r.git": true, // refused by ParseGit, not taken for a folder
	} {
		if got := IsRemote(s); got != want {
			t.Errorf("IsRemote(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseOCI(t *testing.T) {
	const d = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	for _, tc := range []struct {
		in   string
		want OCIRef
	}{
		{"oci://registry.example.com/team/web:1.2.0", OCIRef{Registry: "registry.example.com", Repository: "team/web", Tag: "1.2.0"}},
		{"oci://127.0.0.135:5000/dtk/web", OCIRef{Registry: "127.0.0.135:5000", Repository: "dtk/web"}},
		{"oci://r.example/web@" + d, OCIRef{Registry: "r.example", Repository: "web", Digest: d}},
		{"oci://r.example/web:1.2.0@" + d, OCIRef{Registry: "r.example", Repository: "web", Digest: d}},
		{"oci://localhost:5000/a/b/c:v1_rc.2-x", OCIRef{Registry: "localhost:5000", Repository: "a/b/c", Tag: "v1_rc.2-x"}},
	} {
		got, err := ParseOCI(tc.in)
		if err != nil {
			t.Errorf("ParseOCI(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseOCI(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if tc.want.Tag != "" || tc.want.Digest != "" || tc.in == "oci://127.0.0.135:5000/dtk/web" {
			if back, _ := ParseOCI(got.String()); back != got {
				t.Errorf("ParseOCI(%q).String() = %q does not parse back", tc.in, got.String())
			}
		}
	}
}

func TestParseOCI_Invalid(t *testing.T) {
	for _, in := range []string{
		"oci://",
		"oci://registry.example.com",
		"oci://registry.example.com/",
		"oci://r.example/Team/Web:1.0.0",   // repositories are lowercase
		"oci://r.example/web:1.0.0+build3", // '+' is not allowed in a tag
		"oci://r.example/web:",
		"oci://r.example/web@sha256:abc",
		"oci://r.example/web@md5:0123456789abcdef0123456789abcdef",
		"r.example/web:1.0.0",
		"docker://r.example/web:1.0.0",
	} {
		if _, err := ParseOCI(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseOCI(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestValidTag(t *testing.T) {
	for tag, want := range map[string]bool{"1.2.0": true, "v1.2.0-rc.1": true, "1.2.0+build": false, "": false, ".x": false, "_x": true} {
		if got := ValidTag(tag); got != want {
			t.Errorf("ValidTag(%q) = %v, want %v", tag, got, want)
		}
	}
}

func TestParseGit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GitRef
	}{
		{"git::https://git.example.com/ops/modules.git//web?ref=v1.2.0", GitRef{Repo: "https://git.example.com/ops/modules.git", Path: "web", Ref: "v1.2.0"}},
		{"git::https://git.example.com/ops/web.git", GitRef{Repo: "https://git.example.com/ops/web.git"}},
		{"git::https://git.example.com/ops/web.git?ref=main", GitRef{Repo: "https://git.example.com/ops/web.git", Ref: "main"}},
		{"git::ssh://git@git.example.com/ops/modules.git//a/b/?ref=release/2", GitRef{Repo: "ssh://git@git.example.com/ops/modules.git", Path: "a/b", Ref: "release/2"}},
		{"git::git@git.example.com:ops/modules.git//web?ref=v1", GitRef{Repo: "git@git.example.com:ops/modules.git", Path: "web", Ref: "v1"}},
		{"git::file:///srv/repos/modules//web?ref=0123abcd", GitRef{Repo: "file:///srv/repos/modules", Path: "web", Ref: "0123abcd"}},
		{"git::/srv/repos/modules//web?ref=v1", GitRef{Repo: "/srv/repos/modules", Path: "web", Ref: "v1"}},
		{"git::./modules//web/./x?ref=v1", GitRef{Repo: "./modules", Path: "web/x", Ref: "v1"}},
		{"git::/srv/repo//?ref=v1", GitRef{Repo: "/srv/repo", Ref: "v1"}},
		{"git::/srv/repo//.", GitRef{Repo: "/srv/repo"}},
		{"git::https://git.example.com/r.git//web?ref=refs/tags/v1", GitRef{Repo: "https://git.example.com/r.git", Path: "web", Ref: "refs/tags/v1"}},
	} {
		got, err := ParseGit(tc.in)
		if err != nil {
			t.Errorf("ParseGit(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseGit(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if back, err := ParseGit(got.String()); err != nil || back != got {
			t.Errorf("ParseGit(%q).String() = %q parses back to %+v, %v", tc.in, got.String(), back, err)
		}
	}
}

func TestParseGit_Invalid(t *testing.T) {
	for _, in := range []string{
		"git::",
		"git::?ref=v1",
		"git:://web?ref=v1",
		"git::https://git.example.com/r.git//../etc?ref=v1",
		"git::https://git.example.com/r.git//web/../../x",
		"git::/srv/repo///etc", // an absolute folder
		"git::s3://bucket/r//web",
		"git::https:///r.git",
		"git::file://",
		"git::https://git.example.com/r.git?ref=",
		"git::https://git.example.com/r.git?ref=a&ref=b",
		"git::https://git.example.com/r.git?depth=1",
		"git::https://git.example.com/r.git?sshkey=abc",
		"git::https://git.example.com/r.git?ref=a..b",
		"git::https://git.example.com/r.git?ref=a:b",
		"git::https://git.example.com/r.git?ref=-upload-pack",
		"git::https://git.example.com/r.git?ref=a%20b",
		"https://git.example.com/r.git",
	} {
		if _, err := ParseGit(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseGit(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestGitRef_String_HidesPassword(t *testing.T) {
	g, err := ParseGit("git::https://bot:s3cret@git.example.com/r.git//web?ref=v1")
	if err != nil {
		t.Fatal(err)
	}
	if s := g.String(); s != "git::https://bot:xxxxx@git.example.com/r.git//web?ref=v1" {
		t.Fatalf("String() = %q", s)
	}
}

func TestGitRef_Endpoint_LocalPathAbsolute(t *testing.T) {
	g, _ := ParseGit("git::./repo//web")
	ep, err := g.endpoint()
	if err != nil || !filepath.IsAbs(ep) {
		t.Fatalf("endpoint = %q, %v", ep, err)
	}
	for _, remote := range []string{"https://h/r.git", "git@h:o/r.git", "file:///srv/r"} {
		if ep, _ := (GitRef{Repo: remote}).endpoint(); ep != remote {
			t.Errorf("endpoint(%q) = %q", remote, ep)
		}
	}
}
