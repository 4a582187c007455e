package packaging

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/chglog"
	"go.yaml.in/yaml/v3"
)

// A changelogSection is one "## [...]" section of CHANGELOG.md.
type changelogSection struct {
	version string // "" for Unreleased
	date    time.Time
	groups  []changelogGroup
}

// A changelogGroup is one "### Added" (Changed, Fixed, ...) list.
type changelogGroup struct {
	name  string
	items []string
}

var (
	sectionRE = regexp.MustCompile(`^## \[([^\]]+)\](?:\s*-\s*(\d{4}-\d{2}-\d{2}))?\s*$`)
	groupRE   = regexp.MustCompile(`^### (.+?)\s*$`)
)

// parseChangelog reads a Keep a Changelog file: "## [Unreleased]" and
// "## [1.2.3] - 2026-01-02" sections, "### Added" groups, "- " items
// (continued on indented lines). Everything else is prose and skipped.
func parseChangelog(md string) ([]changelogSection, error) {
	var out []changelogSection
	var sec *changelogSection
	var grp *changelogGroup
	for n, line := range strings.Split(md, "\n") {
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			out = append(out, changelogSection{})
			sec, grp = &out[len(out)-1], nil
			if !strings.EqualFold(m[1], "Unreleased") {
				sec.version = strings.TrimPrefix(m[1], "v")
				d, err := time.Parse("2006-01-02", m[2])
				if err != nil {
					return nil, fmt.Errorf("CHANGELOG.md:%d: a released section needs a date: ## [%s] - YYYY-MM-DD", n+1, m[1])
				}
				sec.date = d
			}
			continue
		}
		if strings.HasPrefix(line, "## ") {
			return nil, fmt.Errorf("CHANGELOG.md:%d: a section heading is ## [VERSION] - YYYY-MM-DD or ## [Unreleased]", n+1)
		}
		if sec == nil {
			continue
		}
		if m := groupRE.FindStringSubmatch(line); m != nil {
			sec.groups = append(sec.groups, changelogGroup{name: m[1]})
			grp = &sec.groups[len(sec.groups)-1]
			continue
		}
		switch {
		case strings.HasPrefix(line, "- ") || strings.HasPrefix(line, "* "):
			if grp == nil {
				sec.groups = append(sec.groups, changelogGroup{})
				grp = &sec.groups[len(sec.groups)-1]
			}
			grp.items = append(grp.items, strings.TrimSpace(line[2:]))
		case strings.HasPrefix(line, "  ") && strings.TrimSpace(line) != "" && grp != nil && len(grp.items) > 0:
			grp.items[len(grp.items)-1] += " " + strings.TrimSpace(line)
		}
	}
	return out, nil
}

// releaseEntries are the changelog's entries for a package at pkgVersion
// (PackageVersion's form), newest first. A released section of that
// version comes first; otherwise the first entry is pkgVersion with the
// Unreleased section's items, dated at date. Older released sections
// follow.
func releaseEntries(md, pkgVersion string, date time.Time) ([]changelogSection, error) {
	secs, err := parseChangelog(md)
	if err != nil {
		return nil, err
	}
	for i := range secs {
		if secs[i].version == pkgVersion {
			var out []changelogSection
			for _, s := range secs[i:] {
				if s.version != "" {
					out = append(out, s)
				}
			}
			return out, nil
		}
	}
	top := changelogSection{version: pkgVersion, date: date}
	out := []changelogSection{top}
	for _, s := range secs {
		if s.version == "" && out[0].groups == nil {
			out[0].groups = s.groups
		}
		if s.version != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// DebianChangelog renders CHANGELOG.md as the changelog of the native
// .deb at package version pkgVersion (see releaseEntries).
func DebianChangelog(md, pkgVersion, maintainer string, date time.Time) (string, error) {
	entries, err := releaseEntries(md, pkgVersion, date)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, s := range entries {
		if i > 0 {
			b.WriteString("\n")
		}
		writeDebianEntry(&b, s, maintainer)
	}
	return b.String(), nil
}

// RPMChangelog renders CHANGELOG.md as nfpm's changelog file (chglog's
// YAML), from which the .rpm's %changelog is made: one entry per
// version, "VERSION-1" as rpm names the release, an item a line.
func RPMChangelog(md, pkgVersion, packager string, date time.Time) ([]byte, error) {
	entries, err := releaseEntries(md, pkgVersion, date)
	if err != nil {
		return nil, err
	}
	var out chglog.ChangeLogEntries
	for _, s := range entries {
		e := &chglog.ChangeLog{Semver: s.version + "-1", Date: s.date.UTC(), Packager: packager}
		for _, g := range s.groups {
			for _, it := range g.items {
				note := markdownToText(it)
				if g.name != "" {
					note = g.name + ": " + note
				}
				e.Changes = append(e.Changes, &chglog.ChangeLogChange{Note: note})
			}
		}
		if len(e.Changes) == 0 {
			e.Changes = append(e.Changes, &chglog.ChangeLogChange{Note: noChanges})
		}
		out = append(out, e)
	}
	return yaml.Marshal(out)
}

const noChanges = "A build between releases; CHANGELOG.md lists nothing new yet."

func writeDebianEntry(b *strings.Builder, s changelogSection, maintainer string) {
	fmt.Fprintf(b, "%s (%s) unstable; urgency=medium\n\n", PackageName, s.version)
	wrote := false
	for _, g := range s.groups {
		if len(g.items) == 0 {
			continue
		}
		wrote = true
		if g.name == "" {
			for _, it := range g.items {
				b.WriteString(wrapIndent(markdownToText(it), "  * ", "    ", 78))
			}
			continue
		}
		b.WriteString("  * " + g.name + ":\n")
		for _, it := range g.items {
			b.WriteString(wrapIndent(markdownToText(it), "    - ", "      ", 78))
		}
	}
	if !wrote {
		b.WriteString("  * " + noChanges + "\n")
	}
	fmt.Fprintf(b, "\n -- %s  %s\n", maintainer, s.date.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

var linkRE = regexp.MustCompile(`\[([^\]]+)\]\([^)]+\)`)

// markdownToText drops link targets and backquotes.
func markdownToText(s string) string {
	s = linkRE.ReplaceAllString(s, "$1")
	return strings.ReplaceAll(s, "`", "")
}

// wrapIndent wraps text at width, the first line after first, the others
// after rest.
func wrapIndent(text, first, rest string, width int) string {
	var b strings.Builder
	line := first
	empty := true
	for _, w := range strings.Fields(text) {
		if !empty && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if empty {
			line += w
		} else {
			line += " " + w
		}
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
