package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/signing"
	"github.com/dtkhq/dtk/plan"
)

// BundleCmd is `dtkctl bundle`.
type BundleCmd struct {
	Export  BundleExportCmd  `cmd:"" help:"Write modules, with every asset and their digests, into one bundle file."`
	Import  BundleImportCmd  `cmd:"" help:"Check a bundle file and load all of its modules into the cluster, or none."`
	Inspect BundleInspectCmd `cmd:"" help:"Check a bundle file and list its modules (no cluster needed)."`
}

// BundleExportCmd is `dtkctl bundle export FILE [MODULE[@VERSION]]...`.
type BundleExportCmd struct {
	File    string   `arg:"" help:"Bundle file to write (written to a temporary file, then renamed)." placeholder:"FILE"`
	Modules []string `arg:"" optional:"" help:"NAME for every version of a module, NAME@VERSION for one; none: every module." placeholder:"MODULE[@VERSION]"`
	SignKey string   `name:"sign-key" help:"Sign the bundle with this private key (dtkctl key create), and every module in it that this key has not signed yet (its archive then changes: it carries a new dtk.sig)." placeholder:"NAME.key" type:"path"`
	Signer  string   `help:"With --sign-key: who signs, named in the signatures (default: the signer the key was made for)."`
	JSON    bool     `help:"Print JSON: the file, its size and sha256, and the manifest."`
}

// Validate checks the flags that go together.
func (c *BundleExportCmd) Validate() error {
	if c.Signer != "" && c.SignKey == "" {
		return usagef("--signer goes with --sign-key")
	}
	return nil
}

// Run selects the modules, streams their blobs from the coordinator into
// the bundle (checking each digest) and renames the file into place.
func (c *BundleExportCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	start := time.Now()
	var key *signing.PrivateKey
	if c.SignKey != "" {
		k, err := signing.LoadPrivateKey(c.SignKey)
		if err != nil {
			return usagef("--sign-key: %v", err)
		}
		key = k
	}
	all, err := cl.Modules(ctx)
	if err != nil {
		return err
	}
	mods, err := selectModules(all, c.Modules)
	if err != nil {
		return err
	}
	m := bundle.Manifest{Created: time.Now().UTC(), CreatedBy: "dtkctl " + version}
	open := func(e bundle.Entry) (io.ReadCloser, error) { return cl.Blob(ctx, e.Digest) }
	var signed []exportedModule
	if key != nil {
		// Every archive is fetched first: the manifest, written first,
		// lists the digests of the archives as signed.
		tmp, err := os.MkdirTemp(filepath.Dir(c.File), ".dtkctl-export-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if signed, err = prepareSigned(ctx, cl, mods, key, c.Signer, tmp); err != nil {
			return fmt.Errorf("export to %s: %w (nothing was written)", c.File, err)
		}
		paths := map[string]string{}
		for _, em := range signed {
			m.Modules = append(m.Modules, em.entry)
			paths[em.entry.Digest] = em.path
		}
		if err := signing.SignManifest(&m, key, c.Signer, time.Now()); err != nil {
			return usagef("--signer: %v", err)
		}
		open = func(e bundle.Entry) (io.ReadCloser, error) { return os.Open(paths[e.Digest]) }
	} else {
		for _, mod := range mods {
			m.Modules = append(m.Modules, bundle.Entry{Name: mod.Name, Version: mod.Version, Digest: mod.Digest, Size: mod.Size})
		}
	}
	sum, size, err := writeAtomic(c.File, func(w io.Writer) error {
		_, err := bundle.Write(w, m, open)
		return err
	})
	if err != nil {
		return fmt.Errorf("export to %s: %w (nothing was written)", c.File, err)
	}
	if c.JSON {
		return out.JSON(map[string]any{"file": c.File, "bytes": size, "sha256": sum, "manifest": m})
	}
	resigned := 0
	for _, em := range signed {
		switch {
		case em.signed && em.was != "":
			resigned++
			out.Printf("signed %s (replacing the signature of %s): its archive is now %s\n", em.entry.Ref(), em.was, shortDigest(em.entry.Digest))
		case em.signed:
			resigned++
			out.Printf("signed %s: its archive is now %s\n", em.entry.Ref(), shortDigest(em.entry.Digest))
		default:
			out.Printf("signed already by this key: %s\n", em.entry.Ref())
		}
	}
	for _, e := range m.Modules {
		out.Printf("exported %s (%s, %s)\n", e.Ref(), shortDigest(e.Digest), humanSize(e.Size))
	}
	out.Printf("wrote %s: %s, %s in %s\nsha256 %s\n", c.File, plural(len(m.Modules), "module"), humanSize(size),
		time.Since(start).Round(time.Millisecond), sum)
	if key != nil {
		out.Printf("signed by %s\n", signing.ManifestSigner(&m))
	}
	if resigned > 0 {
		out.Notef("note: %s signed here differ from the cluster's copies (they now carry dtk.sig): a cluster that has them unsigned refuses this bundle (409); sign modules before their first push (dtkctl module sign)\n",
			plural(resigned, "module"))
	}
	return nil
}

// selectModules picks NAME (every version) and NAME@VERSION from the
// pushed modules, in the cluster's order (name, then version); no
// selector picks every module.
func selectModules(all []*plan.Module, sel []string) ([]*plan.Module, error) {
	if len(sel) == 0 {
		if len(all) == 0 {
			return nil, usagef("the cluster has no modules: nothing to export")
		}
		for _, m := range all {
			if m.Digest == "" {
				return nil, fmt.Errorf("module %s has no archive digest: it cannot be exported", m.Ref())
			}
		}
		return all, nil
	}
	picked := map[string]bool{}
	for _, s := range sel {
		name, ver, hasVer := strings.Cut(s, "@")
		if name == "" || (hasVer && ver == "") {
			return nil, usagef("module %q: use NAME or NAME@VERSION", s)
		}
		found := false
		for _, m := range all {
			if m.Name == name && (!hasVer || m.Version == ver) {
				picked[m.Ref()] = true
				found = true
			}
		}
		if !found {
			var have []string
			for _, m := range all {
				if m.Name == name {
					have = append(have, m.Version)
				}
			}
			if len(have) > 0 {
				return nil, usagef("module %s is not pushed (versions here: %s)", s, strings.Join(have, ", "))
			}
			return nil, usagef("module %s is not pushed (dtkctl module list shows what is)", s)
		}
	}
	var out []*plan.Module
	for _, m := range all {
		if picked[m.Ref()] {
			if m.Digest == "" {
				return nil, fmt.Errorf("module %s has no archive digest: it cannot be exported", m.Ref())
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// writeAtomic writes path through a temporary file beside it, synced and
// renamed into place only when write succeeds; it returns the file's
// sha256 and size.
func writeAtomic(path string, write func(io.Writer) error) (string, int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	cw := &countingWriter{w: bw}
	if err := write(cw); err != nil {
		return "", 0, err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, err
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BundleImportCmd is `dtkctl bundle import FILE`.
type BundleImportCmd struct {
	File    string   `arg:"" help:"Bundle file written by dtkctl bundle export." placeholder:"FILE"`
	Trusted []string `help:"Before uploading, check that the bundle and every module in it are signed by one of these public keys (NAME.pub); repeatable. The coordinator checks again with its own trusted keys." placeholder:"NAME.pub" type:"path"`
	JSON    bool     `help:"Print the coordinator's answer as JSON."`
}

// Validate checks FILE exists before anything is read.
func (c *BundleImportCmd) Validate() error { return checkBundleFile(c.File) }

// Run checks the whole file, then uploads it; the coordinator checks it
// again and records all of its modules in one Raft entry, or none.
func (c *BundleImportCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	start := time.Now()
	f, err := os.Open(c.File)
	if err != nil {
		return usagef("%v", err)
	}
	defer f.Close()
	var m *bundle.Manifest
	var sum string
	if len(c.Trusted) > 0 {
		keys, err := signing.LoadKeyring(c.Trusted)
		if err != nil {
			return usagef("--trusted: %v", err)
		}
		var sigs moduleSigs
		if m, sum, sigs, err = readBundleSigs(f, c.File, "; nothing was imported"); err != nil {
			return err
		}
		if problems := sigs.check(m, keys); len(problems) > 0 {
			return usagef("bundle %s is refused: its signatures do not hold with the --trusted keys; nothing was imported:\n  %s", c.File, strings.Join(problems, "\n  "))
		}
	} else if m, sum, err = verifyBundle(f, c.File, "; nothing was imported"); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	resp, err := cl.ImportBundle(ctx, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && !strings.Contains(ae.Message, "nothing was imported") {
			ae.Message = strings.TrimRight(ae.Message, "\n") + "\n(nothing was imported)"
		}
		return err
	}
	if c.JSON {
		return out.JSON(resp)
	}
	for _, e := range resp.Imported {
		out.Printf("imported %s (%s, %s)\n", e.Ref(), shortDigest(e.Digest), humanSize(e.Size))
	}
	for _, e := range resp.Existing {
		out.Printf("already present %s (%s, same content)\n", e.Ref(), shortDigest(e.Digest))
	}
	out.Printf("bundle %s (sha256 %s, created %s): %d imported, %d already present, in %s\n",
		c.File, sum[:12], m.Created.Format(time.RFC3339), len(resp.Imported), len(resp.Existing), time.Since(start).Round(time.Millisecond))
	return nil
}

// BundleInspectCmd is `dtkctl bundle inspect FILE`.
type BundleInspectCmd struct {
	File    string   `arg:"" help:"Bundle file." placeholder:"FILE"`
	Trusted []string `help:"Also check that the bundle and every module in it are signed by one of these public keys (NAME.pub); repeatable." placeholder:"NAME.pub" type:"path"`
	JSON    bool     `help:"Print the manifest as JSON."`
}

// Validate checks FILE exists.
func (c *BundleInspectCmd) Validate() error { return checkBundleFile(c.File) }

// Run checks the whole file and lists what it holds.
func (c *BundleInspectCmd) Run(out *Output) error {
	f, err := os.Open(c.File)
	if err != nil {
		return usagef("%v", err)
	}
	defer f.Close()
	var keys *signing.Keyring
	if len(c.Trusted) > 0 {
		if keys, err = signing.LoadKeyring(c.Trusted); err != nil {
			return usagef("--trusted: %v", err)
		}
	}
	m, sum, sigs, err := readBundleSigs(f, c.File, "")
	if err != nil {
		return err
	}
	var problems []string
	if keys != nil {
		problems = sigs.check(m, keys)
	}
	if c.JSON {
		if err := out.JSON(m); err != nil {
			return err
		}
	} else {
		rows := make([][]string, 0, len(m.Modules))
		for _, e := range m.Modules {
			rows = append(rows, []string{e.Name, e.Version, shortDigest(e.Digest), humanSize(e.Size), sigs.signerOf(e)})
		}
		out.Table([]string{"NAME", "VERSION", "DIGEST", "SIZE", "SIGNED BY"}, rows)
		signed := "not signed"
		if s := signing.ManifestSigner(m); s != "" {
			signed = "signed by " + s
		}
		switch {
		case keys == nil && m.Signature != nil:
			signed += " (not checked: give --trusted NAME.pub)"
		case keys != nil && len(problems) == 0:
			signed += "; every signature holds with the --trusted keys"
		}
		out.Printf("ok: %s, every digest checked; created %s by %s; %s; sha256 %s\n",
			plural(len(m.Modules), "module"), m.Created.Format(time.RFC3339), orDash(m.CreatedBy), signed, sum)
	}
	if len(problems) > 0 {
		return usagef("bundle %s: its signatures do not hold with the --trusted keys:\n  %s", c.File, strings.Join(problems, "\n  "))
	}
	return nil
}

func checkBundleFile(p string) error {
	fi, err := os.Stat(p)
	switch {
	case os.IsNotExist(err):
		return usagef("bundle file %q does not exist", p)
	case err != nil:
		return usagef("bundle file: %v", err)
	case fi.IsDir():
		return usagef("%q is a folder: give the bundle file", p)
	}
	return nil
}

// verifyBundle reads the whole bundle and checks it; a bad bundle is a
// usage error (exit 2) that says what is wrong. It returns the manifest
// and the file's sha256.
func verifyBundle(r io.Reader, name, suffix string) (*bundle.Manifest, string, error) {
	h := sha256.New()
	m, err := bundle.Read(io.TeeReader(r, h), nil)
	if errors.Is(err, bundle.ErrInvalid) {
		msg := strings.TrimPrefix(err.Error(), bundle.ErrInvalid.Error()+": ")
		return nil, "", usagef("bundle %s is refused: %s%s", name, msg, suffix)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	return m, hex.EncodeToString(h.Sum(nil)), nil
}

// humanSize prints a byte count: 512 B, 3.4 kB, 12.0 MB.
func humanSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
}
