// Command dtk-package builds dtk's release artifacts; the Makefile runs it.
//
//	dtk-package packages --version V --bin-dir 'dist/build/linux-{arch}' --share-dir bin/share --out dist
//	dtk-package dist     --version V --bin-dir 'dist/build/linux-{arch}' --share-dir bin/share --out dist
//
// packages writes a .deb and an .rpm per arch; dist writes them too, plus
// one bundle per arch and dist/SHA256SUMS over everything it wrote.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/packaging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dtk-package:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "packages" && args[0] != "dist") {
		return fmt.Errorf("usage: dtk-package packages|dist --version V --bin-dir DIR --out DIR [--arch A]...")
	}
	what := args[0]
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	version := fs.String("version", "dev", "version, as `git describe` prints it")
	binDir := fs.String("bin-dir", "dist/build/linux-{arch}", "folder of dtk-agent and dtkctl; {arch} is replaced")
	out := fs.String("out", "dist", "output folder")
	repo := fs.String("repo", ".", "repository root")
	share := fs.String("share-dir", "", "folder of dtkctl's generated completions/ and man/ (make completions man); empty: none")
	maintainer := fs.String("maintainer", "", "package maintainer (default: "+packaging.DefaultMaintainer+")")
	var arches []string
	fs.Func("arch", "architecture (repeatable; default: amd64 and arm64)", func(s string) error {
		arches = append(arches, s)
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if len(arches) == 0 {
		arches = packaging.Arches
	}
	mtime := sourceDate(*repo)
	var written []string
	for _, arch := range arches {
		start := time.Now()
		o := packaging.Options{
			Version: *version, Arch: arch, BinDir: strings.ReplaceAll(*binDir, "{arch}", arch),
			RepoDir: *repo, ShareDir: *share, OutDir: *out, MTime: mtime, Maintainer: *maintainer,
		}
		made, err := packaging.Packages(o)
		if err != nil {
			return err
		}
		if what == "dist" {
			b, err := packaging.Bundle(o, made)
			if err != nil {
				return err
			}
			made = append(made, b)
		}
		for _, p := range made {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			fmt.Printf("%-56s %6.1f MB\n", p, float64(fi.Size())/1e6)
		}
		written = append(written, made...)
		fmt.Printf("linux-%s done in %s\n", arch, time.Since(start).Round(100*time.Millisecond))
	}
	if what == "dist" {
		var names []string
		for _, p := range written {
			names = append(names, filepath.Base(p))
		}
		if err := packaging.WriteSums(*out, names); err != nil {
			return err
		}
		fmt.Println(filepath.Join(*out, "SHA256SUMS"))
	}
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH, else the last commit's time, else now:
// the time stamped on every packaged file.
func sourceDate(repo string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = repo
	if b, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC()
}
