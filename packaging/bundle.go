package packaging

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// BundleName is the bundle's file name (and, without .tar.gz, its top
// folder) for a version and arch.
func BundleName(version, arch string) string {
	v := strings.NewReplacer("/", "-", " ", "-").Replace(version)
	return fmt.Sprintf("dtk-%s-linux-%s.tar.gz", v, arch)
}

// entry is one file of the bundle: from a file on disk or from bytes.
type entry struct {
	name string // slash path inside the bundle folder
	src  string
	data []byte
	mode int64
}

// Bundle writes the self-contained bundle for o.Arch into o.OutDir and
// returns its path. The bundle is one folder holding the static binaries
// (bin/), the packages given (packages/), install.sh with what it installs
// (share/), README.md, CHANGELOG.md, LICENSE, NOTICE, the licences of the
// linked third-party code (THIRD-PARTY-LICENSES), docs/, examples/ and
// SHA256SUMS of all of them; with o.Signer, also SHA256SUMS.asc, which
// install.sh checks with gpgv before anything else. Nothing in it reaches
// the network. Entries are sorted, owned by root and stamped with o.MTime,
// so the same inputs give the same bytes (a signature aside).
func Bundle(o Options, pkgs []string) (string, error) {
	linked, err := LinkedCode(filepath.Join(o.BinDir, "dtk-agent"), filepath.Join(o.BinDir, "dtkctl"))
	if err != nil {
		return "", fmt.Errorf("bundle for %s: %w", o.Arch, err)
	}
	ents := []entry{
		{name: "LICENSE", src: filepath.Join(o.RepoDir, "LICENSE"), mode: 0o644},
		{name: "NOTICE", src: filepath.Join(o.RepoDir, "NOTICE"), mode: 0o644},
		{name: "CHANGELOG.md", src: filepath.Join(o.RepoDir, "CHANGELOG.md"), mode: 0o644},
		{name: "THIRD-PARTY-LICENSES", data: []byte(ThirdPartyText(linked)), mode: 0o644},
		{name: "bin/dtk-agent", src: filepath.Join(o.BinDir, "dtk-agent"), mode: 0o755},
		{name: "bin/dtkctl", src: filepath.Join(o.BinDir, "dtkctl"), mode: 0o755},
		{name: "install.sh", src: filepath.Join(o.RepoDir, "packaging/install.sh"), mode: 0o755},
		{name: "README.md", src: filepath.Join(o.RepoDir, "README.md"), mode: 0o644},
		{name: "share/dtk-agent.service", src: filepath.Join(o.RepoDir, "packaging/dtk-agent.service"), mode: 0o644},
		{name: "share/agent.hcl", src: filepath.Join(o.RepoDir, "packaging/agent.hcl"), mode: 0o644},
		{name: "share/VERSION", data: []byte(o.Version + "\n"), mode: 0o644},
		{name: "share/ARCH", data: []byte(o.Arch + "\n"), mode: 0o644},
	}
	for _, p := range pkgs {
		ents = append(ents, entry{name: "packages/" + filepath.Base(p), src: p, mode: 0o644})
	}
	for _, dir := range []string{"docs", "examples"} {
		tree, err := walk(filepath.Join(o.RepoDir, dir), dir)
		if err != nil {
			return "", err
		}
		ents = append(ents, tree...)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })

	var sums strings.Builder
	for _, e := range ents {
		sum, err := e.sha256()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, e.name)
	}
	ents = append(ents, entry{name: SumsName, data: []byte(sums.String()), mode: 0o644})
	if o.Signer != nil {
		var sig strings.Builder
		if err := o.Signer.ArmoredDetachSign(&sig, strings.NewReader(sums.String())); err != nil {
			return "", fmt.Errorf("bundle for %s: sign SHA256SUMS: %w", o.Arch, err)
		}
		ents = append(ents, entry{name: SumsSigName, data: []byte(sig.String()), mode: 0o644})
	}

	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	name := BundleName(o.Version, o.Arch)
	top := strings.TrimSuffix(name, ".tar.gz")
	mtime := o.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	mtime = mtime.Truncate(time.Second)
	target := filepath.Join(o.OutDir, name)
	err = writeFile(target, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		dirs := map[string]bool{}
		for _, e := range ents {
			if err := writeDirs(tw, dirs, top, path.Dir(e.name), mtime); err != nil {
				return err
			}
			if err := e.write(tw, top, mtime); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return "", fmt.Errorf("bundle for %s: %w", o.Arch, err)
	}
	return target, nil
}

// walk lists the files under dir as entries named below prefix, keeping
// the executable bit (example scripts).
func walk(dir, prefix string) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		out = append(out, entry{name: prefix + "/" + filepath.ToSlash(rel), src: p, mode: mode})
		return nil
	})
	return out, err
}

func (e entry) open() (io.ReadCloser, int64, error) {
	if e.src == "" {
		return io.NopCloser(strings.NewReader(string(e.data))), int64(len(e.data)), nil
	}
	f, err := os.Open(e.src)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (e entry) sha256() (string, error) {
	r, _, err := e.open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (e entry) write(tw *tar.Writer, top string, mtime time.Time) error {
	r, size, err := e.open()
	if err != nil {
		return err
	}
	defer r.Close()
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: top + "/" + e.name, Size: size, Mode: e.mode,
		ModTime: mtime, Uname: "root", Gname: "root",
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s changed while being bundled", e.name)
	}
	return err
}

// writeDirs writes the folder entries of dir (and its parents) once.
func writeDirs(tw *tar.Writer, done map[string]bool, top, dir string, mtime time.Time) error {
	if done[dir] {
		return nil
	}
	if dir != "." {
		if err := writeDirs(tw, done, top, path.Dir(dir), mtime); err != nil {
			return err
		}
	}
	done[dir] = true
	name := top + "/"
	if dir != "." {
		name = top + "/" + dir + "/"
	}
	return tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime,
		Uname: "root", Gname: "root",
	})
}
