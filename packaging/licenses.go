package packaging

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// License is dtk's own licence (SPDX), as the rpm's License tag and the
// copyright file's name it.
const License = "Apache-2.0"

// Copyright is dtk's own copyright line.
const Copyright = "2026 The dtk authors"

// ThirdParty is a body of code linked into the binaries that is not dtk's:
// a Go module, or the Go standard library. The static binaries carry their
// code, so the packages carry their licences and notices.
type ThirdParty struct {
	Path    string // module path, or "std" for the Go standard library
	Version string
	License string // SPDX identifier, as classifyLicense names it
	// Files are the module's licence, notice and patent files, by name
	// (LICENSE, NOTICE, PATENTS, ...), with their text.
	Files []NamedText
	// Copyright holds the copyright lines found in those files.
	Copyright []string
}

// NamedText is a file's name and text.
type NamedText struct{ Name, Text string }

// errNotGo marks a file that is not a Go executable (the tests' stand-ins).
var errNotGo = errors.New("not a Go executable")

// LinkedCode lists the third-party code linked into the given Go
// binaries: the Go standard library and every module of their build
// information, with the licence files from the module cache (GOMODCACHE,
// filled by the build that made them). A module whose licence cannot be
// found or is not recognised is an error: a release must say what it
// carries. A file that is not a Go executable adds nothing.
func LinkedCode(binaries ...string) ([]ThirdParty, error) {
	type modKey struct{ path, version string }
	mods := map[modKey]bool{}
	goVersion := ""
	for _, b := range binaries {
		bi, err := buildinfo.ReadFile(b)
		if err != nil {
			if isNotGo(err) {
				continue
			}
			return nil, fmt.Errorf("read build info of %s: %w", b, err)
		}
		goVersion = bi.GoVersion
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			if d.Version == "" {
				return nil, fmt.Errorf("%s in %s is replaced by a local folder: its licence cannot be read from the module cache", d.Path, b)
			}
			mods[modKey{d.Path, d.Version}] = true
		}
	}
	if goVersion == "" {
		return nil, nil
	}
	var out []ThirdParty
	std, err := stdlib(goVersion)
	if err != nil {
		return nil, err
	}
	out = append(out, std)
	cache, err := goEnv("GOMODCACHE")
	if err != nil {
		return nil, err
	}
	for m := range mods {
		dir := filepath.Join(cache, escapeModulePath(m.path)+"@"+m.version)
		tp, err := readLicenses(dir, m.path, m.version)
		if err != nil {
			return nil, err
		}
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Path == "std") != (out[j].Path == "std") {
			return out[i].Path == "std"
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

func isNotGo(err error) bool {
	s := err.Error()
	return strings.Contains(s, "not a Go executable") || strings.Contains(s, "unrecognized file format")
}

func stdlib(goVersion string) (ThirdParty, error) {
	root, err := goEnv("GOROOT")
	if err != nil {
		return ThirdParty{}, err
	}
	tp, err := readLicenses(root, "std", goVersion)
	if err != nil {
		return ThirdParty{}, fmt.Errorf("the Go standard library: %w", err)
	}
	return tp, nil
}

func goEnv(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("go env %s is empty", name)
	}
	return v, nil
}

// escapeModulePath is the module cache's spelling of a path: each upper
// case letter becomes '!' and the letter in lower case.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// licenseFileNames are the names, without extension and in upper case, of
// the files that carry a licence, a notice or a patent grant.
var licenseFileNames = []string{"LICENSE", "LICENCE", "COPYING", "NOTICE", "PATENTS"}

func readLicenses(dir, path, version string) (ThirdParty, error) {
	tp := ThirdParty{Path: path, Version: version}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return tp, fmt.Errorf("licence of %s@%s: %w (is the module cache the one the binaries were built with?)", path, version, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		base := strings.ToUpper(strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
		for _, n := range licenseFileNames {
			if base == n {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					return tp, err
				}
				tp.Files = append(tp.Files, NamedText{Name: e.Name(), Text: string(b)})
			}
		}
	}
	var ids []string
	for _, f := range tp.Files {
		if isNoticeFile(f.Name) {
			continue
		}
		found := classifyLicense(f.Text)
		if len(found) == 0 {
			return tp, fmt.Errorf("%s@%s: licence in %s not recognised: add it to classifyLicense (packaging/licenses.go) once you know it allows shipping", path, version, f.Name)
		}
		if isDocsLicense(f.Name) {
			continue
		}
		for _, id := range found {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return tp, fmt.Errorf("%s@%s has no licence file in %s", path, version, dir)
	}
	// Code under several licences (a file each, or parts of the module
	// each under one): all of them apply, as SPDX and DEP-5 write it.
	sort.Strings(ids)
	tp.License = strings.Join(ids, " and ")
	tp.Copyright = copyrightLines(tp.Files)
	return tp, nil
}

// isNoticeFile: a NOTICE or PATENTS file, which goes along with the
// licence rather than being one.
func isNoticeFile(name string) bool {
	up := strings.ToUpper(name)
	return strings.HasPrefix(up, "NOTICE") || strings.HasPrefix(up, "PATENTS")
}

// isDocsLicense: the licence of a module's documentation (LICENSE.docs),
// which is not compiled into the binaries.
func isDocsLicense(name string) bool {
	return strings.Contains(strings.ToUpper(name), "DOCS")
}

// classifyLicense names the licences in a licence file's text by SPDX
// identifier; none when it recognises none. One file may hold several (a
// module with a part under another licence).
func classifyLicense(text string) []string {
	t := strings.Join(strings.Fields(text), " ")
	has := func(s string) bool { return strings.Contains(t, s) }
	var ids []string
	if has("Apache License") && has("Version 2.0") {
		ids = append(ids, "Apache-2.0")
	}
	if has("Mozilla Public License") && has("Version 2.0") {
		ids = append(ids, "MPL-2.0")
	}
	if has("Permission is hereby granted, free of charge, to any person obtaining a copy") {
		ids = append(ids, "MIT")
	}
	if has("Permission to use, copy, modify, and/or distribute this software for any purpose") ||
		has("Permission to use, copy, modify, and distribute this software for any purpose") {
		ids = append(ids, "ISC")
	}
	if has("Permission is granted to anyone to use this software for any purpose, including commercial applications, and to alter it and redistribute it freely") {
		ids = append(ids, "Zlib")
	}
	if has("Attribution-ShareAlike 4.0 International") {
		ids = append(ids, "CC-BY-SA-4.0")
	}
	if has("Redistribution and use in source and binary forms") {
		if has("Neither the name") || has("names of its contributors") || has("name of the copyright holder") {
			ids = append(ids, "BSD-3-Clause")
		} else {
			ids = append(ids, "BSD-2-Clause")
		}
	}
	return ids
}

func copyrightLines(files []NamedText) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		for _, line := range strings.Split(f.Text, "\n") {
			l := strings.TrimSpace(line)
			low := strings.ToLower(l)
			if !strings.HasPrefix(low, "copyright (c)") && !strings.HasPrefix(low, "copyright ©") &&
				!(strings.HasPrefix(low, "copyright ") && strings.ContainsAny(l, "0123456789")) {
				continue
			}
			// The Apache licence's own appendix shows a template line.
			if strings.Contains(l, "[yyyy]") || strings.Contains(l, "{yyyy}") || strings.Contains(l, "[name of copyright owner]") {
				continue
			}
			l = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(l, "Copyright"), "copyright"))
			l = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(l, "(c)"), "(C)"))
			l = strings.TrimSpace(strings.TrimPrefix(l, "©"))
			if l != "" && !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// commonLicenses are the licences Debian ships in /usr/share/common-licenses,
// which a copyright file names instead of repeating them.
var commonLicenses = map[string]string{"Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0"}

// DebianCopyright is the machine-readable (DEP-5) copyright file of the
// .deb: dtk's own paragraph, then one per piece of linked code with its
// licence text (the long licences Debian ships are named, not repeated),
// with NOTICE and PATENTS texts as comments.
func DebianCopyright(notice string, linked []ThirdParty) string {
	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	b.WriteString("Upstream-Name: dtk\n")
	b.WriteString("Upstream-Contact: " + DefaultMaintainer + "\n")
	b.WriteString("Source: " + Homepage + "\n")
	b.WriteString("Comment:" + field(wrapIndent(
		"dtk-agent and dtkctl are statically linked Go programs. Besides dtk's own code "+
			"they contain the Go standard library and the Go modules named below "+
			"(as `go mod vendor` would lay them out), each under its own licence.", "", "", 78)+"\n"+notice) + "\n")
	b.WriteString("\nFiles: *\nCopyright: " + Copyright + "\nLicense: " + License + "\n")
	used := map[string]bool{License: true}
	for _, tp := range linked {
		files := "vendor/" + tp.Path + "/*"
		if tp.Path == "std" {
			files = "vendor/std/*"
		}
		b.WriteString("\nFiles: " + files + "\n")
		cr := tp.Copyright
		if len(cr) == 0 {
			cr = []string{"the authors of " + tp.Path}
		}
		b.WriteString("Copyright:" + field(strings.Join(cr, "\n")) + "\n")
		if commonOnly(tp.License) {
			b.WriteString("License: " + tp.License + "\n")
			for _, id := range strings.Split(tp.License, " and ") {
				used[id] = true
			}
		} else {
			b.WriteString("License: " + tp.License + "\n" + fieldBody(licenseText(tp)) + "\n")
		}
		var comment []string
		name := tp.Path + " " + tp.Version
		if tp.Path == "std" {
			name = "The Go standard library, " + tp.Version
		}
		comment = append(comment, name)
		for _, f := range tp.Files {
			if isNoticeFile(f.Name) {
				comment = append(comment, f.Name+":\n\n"+f.Text)
			}
		}
		b.WriteString("Comment:" + field(strings.Join(comment, "\n\n")) + "\n")
	}
	var names []string
	for n := range used {
		if _, ok := commonLicenses[n]; ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		title := map[string]string{"Apache-2.0": "the Apache License, Version 2.0", "MPL-2.0": "the Mozilla Public License, Version 2.0"}[n]
		fmt.Fprintf(&b, "\nLicense: %s\n On Debian systems, the complete text of %s\n can be found in \"/usr/share/common-licenses/%s\".\n",
			n, title, commonLicenses[n])
	}
	return b.String()
}

// commonOnly: every licence of the expression is one Debian ships.
func commonOnly(expr string) bool {
	for _, id := range strings.Split(expr, " and ") {
		if _, ok := commonLicenses[id]; !ok {
			return false
		}
	}
	return true
}

// licenseText is the text of the module's licence files (not its
// notices, nor its documentation's licence).
func licenseText(tp ThirdParty) string {
	var texts []string
	for _, f := range tp.Files {
		if !isNoticeFile(f.Name) && !isDocsLicense(f.Name) {
			texts = append(texts, strings.TrimSpace(f.Text))
		}
	}
	return strings.Join(texts, "\n\n")
}

// field formats a multi-line DEP-5 field value that starts on the field's
// own line: nothing on the first line, the rest as continuation lines.
func field(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return " " + s
	}
	return "\n" + fieldBody(s)
}

// fieldBody writes text as continuation lines: each line indented by one
// space, empty lines as " .".
func fieldBody(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")), "\n") {
		l = strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), " ")
		if l == "" {
			lines = append(lines, " .")
		} else {
			lines = append(lines, " "+l)
		}
	}
	return strings.Join(lines, "\n")
}

// ThirdPartyText is the plain-text list of linked code with every
// licence, notice and patent file in full: the rpm's and the bundle's
// counterpart of the .deb's copyright file.
func ThirdPartyText(linked []ThirdParty) string {
	var b strings.Builder
	b.WriteString("Third-party code in dtk-agent and dtkctl\n\n")
	b.WriteString("dtk-agent and dtkctl are statically linked Go programs. Besides dtk's own\n")
	b.WriteString("code (" + License + ", see LICENSE and NOTICE) they contain the following, each\n")
	b.WriteString("under its own licence. Every licence, notice and patent file follows in full.\n\n")
	for _, tp := range linked {
		fmt.Fprintf(&b, "  %-48s %-14s %s\n", displayName(tp), tp.Version, tp.License)
	}
	for _, tp := range linked {
		b.WriteString("\n" + strings.Repeat("=", 78) + "\n")
		fmt.Fprintf(&b, "%s %s (%s)\n", displayName(tp), tp.Version, tp.License)
		for _, f := range tp.Files {
			b.WriteString(strings.Repeat("-", 78) + "\n" + f.Name + ":\n\n")
			b.WriteString(strings.TrimRight(f.Text, "\n") + "\n")
		}
	}
	return b.String()
}

func displayName(tp ThirdParty) string {
	if tp.Path == "std" {
		return "Go standard library"
	}
	return tp.Path
}
