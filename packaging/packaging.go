// Package packaging builds what dtk ships: .deb and .rpm packages (with
// nfpm, as a Go library: no fpm, no Ruby), the self-contained bundle for
// air-gapped sites, and the OpenPGP signatures on all of them. The files
// that go into them live beside this one:
//
//	dtk-agent.service  the systemd unit (equal to what `dtk-agent service
//	                   install` writes for the packaged paths)
//	agent.hcl          the default /etc/dtk/agent.hcl
//	scripts/           maintainer scripts, shared by deb and rpm
//	install.sh         the bundle's offline installer (checks the signature)
//	dtk-agent.1        dtk-agent's man page
//	lintian-overrides  what lintian flags by design, with reasons
//	rpmlint.toml       the same for rpmlint
//
// Made at build time: the .deb's DEP-5 copyright file and the list of
// third-party licences (licenses.go, from the binaries' build information),
// the packages' changelogs (changelog.go, from CHANGELOG.md). README.md
// says how releases are signed and linted.
//
// `make packages` and `make dist` run cmd/dtk-package, which calls Release.
package packaging

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// Arches are the Linux architectures dtk ships for (Go names).
var Arches = []string{"amd64", "arm64"}

// Package metadata.
const (
	PackageName = "dtk"
	Homepage    = "https://github.com/dtkhq/dtk"
	// Summary is the one-line description (the .deb's synopsis, the
	// .rpm's Summary): under 80 characters, not starting with the name.
	Summary = "Deployment system with pull agents and Raft-replicated coordinators"
	// LongDescription is the extended description: paragraphs of lines
	// under 80 characters, separated by empty lines.
	LongDescription = `dtk deploys services described in a small HCL language onto fleets of
Linux machines. Three or five coordinators keep the desired state
replicated with Raft; an agent on every node learns its part of the plan
over mutual TLS, converges the machine by running bash scripts, programs,
Puppet manifests, Ansible playbooks and containers, and reports back.

This package holds dtk-agent, the one static binary that runs as an agent
or a coordinator (with its systemd unit, neither started nor enabled, and a
default configuration), and dtkctl, the operator CLI, with its shell
completions and man pages.`
	// DefaultMaintainer is used when Options.Maintainer is empty.
	DefaultMaintainer = "dtk maintainers <maintainers@dtk.invalid>"
	Vendor            = "The dtk authors"
)

// Relations to other packages. An agent runs what a module's actions name:
// bash (Essential on Debian, so not declared there), puppet,
// ansible-playbook, and podman (or docker) for containers. None is needed
// to install dtk, and a coordinator needs none, so the tools are
// suggested; Debian's package names first, then the older ones.
var (
	DebSuggests   = []string{"puppet-agent | puppet", "ansible-core | ansible", "podman | docker.io"}
	RPMRecommends = []string{"bash"}
	RPMSuggests   = []string{"puppet", "ansible-core", "podman"}
)

// Installed paths.
const (
	AgentPath  = "/usr/bin/dtk-agent"
	CtlPath    = "/usr/bin/dtkctl"
	ConfigPath = "/etc/dtk/agent.hcl"
	// TLSDir is where the configuration's example puts keys and
	// certificates: mode 0700, root's, so that the keys in it stay private
	// even if a key file's own mode is too open.
	TLSDir  = "/etc/dtk/tls"
	DataDir = "/var/lib/dtk"
	// UnitPathDeb and UnitPathRPM follow each family's convention
	// (/lib/systemd/system on Debian, %{_unitdir} on RHEL).
	UnitPathDeb = "/lib/systemd/system/dtk-agent.service"
	UnitPathRPM = "/usr/lib/systemd/system/dtk-agent.service"
	DocDir      = "/usr/share/doc/dtk"
	// LicenseDir is the rpm's %license folder.
	LicenseDir = "/usr/share/licenses/dtk"
	// LintianOverridesPath holds the lintian tags the .deb overrides, each
	// with its reason (packaging/lintian-overrides).
	LintianOverridesPath = "/usr/share/lintian/overrides/dtk"
	// Shell completions and man pages of dtkctl (Options.ShareDir). zsh's
	// vendor folder differs: Debian's zsh reads vendor-completions, Fedora's
	// and RHEL's site-functions.
	BashCompletionPath   = "/usr/share/bash-completion/completions/dtkctl"
	ZshCompletionPathDeb = "/usr/share/zsh/vendor-completions/_dtkctl"
	ZshCompletionPathRPM = "/usr/share/zsh/site-functions/_dtkctl"
	FishCompletionPath   = "/usr/share/fish/vendor_completions.d/dtkctl.fish"
	ManDir               = "/usr/share/man/man1"
)

// Options says what to build.
type Options struct {
	// Version is the version as `git describe` prints it (the Makefile's
	// VERSION); packages get PackageVersion(Version).
	Version string
	Arch    string // amd64 or arm64
	// BinDir holds dtk-agent and dtkctl built for Arch.
	BinDir string
	// RepoDir is the repository root (packaging/, docs/, examples/,
	// README.md).
	RepoDir string
	// ShareDir holds what `make completions man` generates from dtkctl:
	// completions/{dtkctl.bash,_dtkctl,dtkctl.fish} and man/*.1.gz. Empty:
	// the packages go without them.
	ShareDir string
	OutDir   string
	// MTime stamps every file (reproducible builds); zero: now.
	MTime      time.Time
	Maintainer string
	// Signer signs the packages (and in Release and Bundle, the rest);
	// nil: nothing is signed.
	Signer *Signer
}

var (
	tagRE      = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+)(?:-(.+))?$`)
	describeRE = regexp.MustCompile(`^(.*)-([0-9]+)-g([0-9a-f]{4,40})$`)
	hashRE     = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	unsafeRE   = regexp.MustCompile(`[^0-9A-Za-z.]+`)
)

// PackageVersion maps a `git describe --tags --always --dirty` version to
// one that dpkg and rpm both accept and order correctly:
//
//	v1.2.3                     1.2.3
//	v1.2.3-rc.1                1.2.3~rc.1        (before 1.2.3)
//	v1.2.3-4-gabc1234-dirty    1.2.3+git4.abc1234.dirty
//	abc1234 (no tag yet)       0.0.0~gitabc1234
//	dev                        0.0.0~dev
func PackageVersion(v string) string {
	v = strings.TrimSpace(v)
	dirty := strings.HasSuffix(v, "-dirty")
	v = strings.TrimSuffix(v, "-dirty")
	var commits, hash string
	if m := describeRE.FindStringSubmatch(v); m != nil {
		v, commits, hash = m[1], m[2], m[3]
	}
	var out string
	switch m := tagRE.FindStringSubmatch(v); {
	case m != nil:
		out = m[1]
		if m[2] != "" {
			out += "~" + clean(m[2])
		}
		if hash != "" {
			out += "+git" + commits + "." + hash
		}
	case hashRE.MatchString(v):
		out = "0.0.0~git" + v
	case v == "":
		out = "0.0.0~dev"
	default:
		out = "0.0.0~" + clean(v)
	}
	if dirty {
		if strings.Contains(out, "+") || strings.Contains(out, "~") {
			out += ".dirty"
		} else {
			out += "+dirty"
		}
	}
	return out
}

func clean(s string) string {
	return strings.Trim(unsafeRE.ReplaceAllString(s, "."), ".")
}

// info is the nfpm description of the package for one arch and format;
// gen holds the files generated for it (generate).
func (o Options) info(format, gen string) (*nfpm.Info, error) {
	src := func(p string) string { return filepath.Join(o.RepoDir, p) }
	bin := func(name string) string { return filepath.Join(o.BinDir, name) }
	mode := func(m os.FileMode) *files.ContentFileInfo { return &files.ContentFileInfo{Mode: m} }
	unit := UnitPathDeb
	if format == "rpm" {
		unit = UnitPathRPM
	}
	maintainer := o.Maintainer
	if maintainer == "" {
		maintainer = DefaultMaintainer
	}
	info := &nfpm.Info{
		Name:          PackageName,
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       PackageVersion(o.Version),
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Vendor:        Vendor,
		License:       License,
		Homepage:      Homepage,
		MTime:         o.MTime,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: bin("dtk-agent"), Destination: AgentPath, FileInfo: mode(0o755)},
				{Source: bin("dtkctl"), Destination: CtlPath, FileInfo: mode(0o755)},
				{Source: src("packaging/dtk-agent.service"), Destination: unit, FileInfo: mode(0o644)},
				{Destination: "/etc/dtk", Type: files.TypeDir, FileInfo: mode(0o755)},
				{
					Destination: TLSDir, Type: files.TypeDir,
					FileInfo: &files.ContentFileInfo{Mode: 0o700, Owner: "root", Group: "root"},
				},
				{
					Source: src("packaging/agent.hcl"), Destination: ConfigPath, Type: files.TypeConfigNoReplace,
					FileInfo: &files.ContentFileInfo{Mode: 0o640, Owner: "root", Group: "dtk"},
				},
				{
					Destination: DataDir, Type: files.TypeDir,
					FileInfo: &files.ContentFileInfo{Mode: 0o750, Owner: "dtk", Group: "dtk"},
				},
			},
			Scripts: nfpm.Scripts{
				PreInstall:  src("packaging/scripts/preinstall.sh"),
				PostInstall: src("packaging/scripts/postinstall.sh"),
				PreRemove:   src("packaging/scripts/preremove.sh"),
				PostRemove:  src("packaging/scripts/postremove.sh"),
			},
		},
	}
	docType := ""
	if format == "rpm" {
		docType = files.TypeRPMDoc
	}
	info.Contents = append(info.Contents, &files.Content{
		Source: filepath.Join(gen, "dtk-agent.1.gz"), Destination: ManDir + "/dtk-agent.1.gz", Type: docType, FileInfo: mode(0o644),
	})
	docs := []string{src("README.md"), src("CHANGELOG.md")}
	more, err := filepath.Glob(src("docs/*.md"))
	if err != nil {
		return nil, err
	}
	docs = append(docs, more...)
	switch format {
	case "deb":
		// Debian: the synopsis, then the extended description; the
		// licences in the machine-readable copyright file, the changelog
		// made from CHANGELOG.md (a native package's changelog.gz).
		info.Description = Summary + "\n" + LongDescription
		info.Suggests = DebSuggests
		for _, d := range docs {
			info.Contents = append(info.Contents, &files.Content{Source: d, Destination: DocDir + "/" + filepath.Base(d), FileInfo: mode(0o644)})
		}
		info.Contents = append(info.Contents,
			&files.Content{Source: filepath.Join(gen, "copyright"), Destination: DocDir + "/copyright", FileInfo: mode(0o644)},
			&files.Content{Source: filepath.Join(gen, "changelog.gz"), Destination: DocDir + "/changelog.gz", FileInfo: mode(0o644)},
			&files.Content{Source: src("packaging/lintian-overrides"), Destination: LintianOverridesPath, FileInfo: mode(0o644)},
		)
	case "rpm":
		// RPM: Summary and Description apart; documentation marked %doc
		// and licences %license, as rpmbuild would.
		info.Description = LongDescription
		info.RPM = nfpm.RPM{Group: "System Environment/Daemons", Summary: Summary}
		info.Changelog = filepath.Join(gen, "changelog.yml")
		info.Recommends = RPMRecommends
		info.Suggests = RPMSuggests
		for _, d := range docs {
			info.Contents = append(info.Contents, &files.Content{Source: d, Destination: DocDir + "/" + filepath.Base(d), Type: docType, FileInfo: mode(0o644)})
		}
		for _, l := range []struct{ src, name string }{
			{src("LICENSE"), "LICENSE"}, {src("NOTICE"), "NOTICE"}, {filepath.Join(gen, "third-party-licenses"), "third-party-licenses"},
		} {
			info.Contents = append(info.Contents, &files.Content{Source: l.src, Destination: LicenseDir + "/" + l.name, Type: files.TypeRPMLicense, FileInfo: mode(0o644)})
		}
	}
	if o.Signer != nil {
		// The .deb: debsig's _gpgorigin member, an armored detached
		// signature of debian-binary, control.tar.gz and data.tar.gz
		// (debsig-verify checks it). The .rpm: the header and the header
		// with its payload, each signed as `rpm --addsign` does.
		info.Deb.Signature = nfpm.DebSignature{
			PackageSignature: nfpm.PackageSignature{SignFn: o.Signer.armoredSignBytes},
			Method:           "debsign", Type: "origin",
		}
		info.RPM.Signature = nfpm.RPMSignature{PackageSignature: nfpm.PackageSignature{SignFn: o.Signer.signBytes}}
	}
	share, err := o.shareContents(format)
	if err != nil {
		return nil, err
	}
	info.Contents = append(info.Contents, share...)
	return nfpm.WithDefaults(info), nil
}

// shareContents are dtkctl's shell completions and man pages, from
// o.ShareDir.
func (o Options) shareContents(format string) (files.Contents, error) {
	if o.ShareDir == "" {
		return nil, nil
	}
	src := func(p string) string { return filepath.Join(o.ShareDir, p) }
	zsh := ZshCompletionPathDeb
	if format == "rpm" {
		zsh = ZshCompletionPathRPM
	}
	mode := &files.ContentFileInfo{Mode: 0o644}
	out := files.Contents{
		{Source: src("completions/dtkctl.bash"), Destination: BashCompletionPath, FileInfo: mode},
		{Source: src("completions/_dtkctl"), Destination: zsh, FileInfo: mode},
		{Source: src("completions/dtkctl.fish"), Destination: FishCompletionPath, FileInfo: mode},
	}
	pages, err := filepath.Glob(src("man/*.1.gz"))
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		c := &files.Content{Source: p, Destination: ManDir + "/" + filepath.Base(p), FileInfo: mode}
		if format == "rpm" {
			c.Type = files.TypeRPMDoc
		}
		out = append(out, c)
	}
	return out, nil
}

// generate writes into gen what the packages carry that is made at build
// time: the .deb's copyright file and changelog, the list of linked
// third-party code with its licences, and dtk-agent's man page gzipped.
func (o Options) generate(gen string) error {
	linked, err := LinkedCode(filepath.Join(o.BinDir, "dtk-agent"), filepath.Join(o.BinDir, "dtkctl"))
	if err != nil {
		return err
	}
	notice, err := os.ReadFile(filepath.Join(o.RepoDir, "NOTICE"))
	if err != nil {
		return err
	}
	md, err := os.ReadFile(filepath.Join(o.RepoDir, "CHANGELOG.md"))
	if err != nil {
		return err
	}
	maintainer := o.Maintainer
	if maintainer == "" {
		maintainer = DefaultMaintainer
	}
	mtime := o.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	changelog, err := DebianChangelog(string(md), PackageVersion(o.Version), maintainer, mtime)
	if err != nil {
		return err
	}
	rpmChangelog, err := RPMChangelog(string(md), PackageVersion(o.Version), maintainer, mtime)
	if err != nil {
		return err
	}
	man, err := os.ReadFile(filepath.Join(o.RepoDir, "packaging/dtk-agent.1"))
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"copyright":            []byte(DebianCopyright(string(notice), linked)),
		"third-party-licenses": []byte(ThirdPartyText(linked)),
		"changelog.gz":         gzipBest([]byte(changelog)),
		"changelog.yml":        rpmChangelog,
		"dtk-agent.1.gz":       gzipBest(man),
	} {
		if err := os.WriteFile(filepath.Join(gen, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// gzipBest compresses as `gzip -9n` does: best compression, no name, no
// time stamp (lintian checks both).
func gzipBest(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// Packages builds the .deb and the .rpm for o.Arch into o.OutDir and
// returns their paths.
func Packages(o Options) ([]string, error) {
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	gen, err := os.MkdirTemp("", "dtk-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(gen)
	if err := o.generate(gen); err != nil {
		return nil, fmt.Errorf("packages for %s: %w", o.Arch, err)
	}
	var out []string
	for _, format := range []string{"deb", "rpm"} {
		var pkg nfpm.Packager = deb.Default
		if format == "rpm" {
			pkg = rpm.DefaultRPM
		}
		info, err := o.info(format, gen)
		if err != nil {
			return nil, fmt.Errorf("build %s for %s: %w", format, o.Arch, err)
		}
		target := filepath.Join(o.OutDir, pkg.ConventionalFileName(info))
		info.Target = target
		if err := writeFile(target, func(w io.Writer) error { return pkg.Package(info, w) }); err != nil {
			return nil, fmt.Errorf("build %s for %s: %w", format, o.Arch, err)
		}
		out = append(out, target)
	}
	return out, nil
}

// writeFile writes path through a temporary file, so that a failed build
// leaves nothing half written.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// WriteSums writes dir/SHA256SUMS for the named files of dir (paths
// relative to dir, slash-separated), in the format `sha256sum --check`
// reads.
func WriteSums(dir string, names []string) error {
	names = append([]string(nil), names...)
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
