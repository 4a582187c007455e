package plan

// Module versions and requires constraints.
//
// Versions are parsed and ordered by github.com/Masterminds/semver/v3, not
// by code of ours. It was chosen over github.com/hashicorp/go-version
// because it implements semver 2.0.0 precedence and syntax exactly:
// StrictNewVersion rejects what the spec forbids (leading zeros, empty
// identifiers, "v1.2", "1.2.3.4"), where go-version accepts all of these,
// and go-version orders some prereleases against the spec (it puts
// 1.0.0-alpha.beta before 1.0.0-alpha). go-version's constraint syntax is
// the one docs/dsl.md documents, but Masterminds reads "~> 1.2" as
// ">= 1.2.0, < 1.3.0" (where we promise < 2.0.0), reads a partial version
// as a wildcard ("> 1.2" as >= 1.3.0) and accepts forms we never
// documented (^, ~, 1.x, ||, ranges). So parseConstraint below only
// tokenizes the documented grammar and hands each clause to the library
// as a constraint over full versions, with "~>" spelled out as a range;
// comparisons and the prerelease rules are the library's.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// parseVersion parses a semantic version, semver 2.0.0 exactly:
// MAJOR.MINOR.PATCH, an optional -PRERELEASE, an optional +BUILD.
func parseVersion(v string) (*semver.Version, error) {
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		return nil, versionError(v, err)
	}
	return sv, nil
}

// versionError says why v is not a semantic version, in words.
func versionError(v string, err error) error {
	return fmt.Errorf("%q is not a semantic version: %s", v, reason(err))
}

// reason words a parse error of the library.
func reason(err error) string {
	switch {
	case errors.Is(err, strconv.ErrRange):
		return "a number is too large"
	case errors.Is(err, semver.ErrInvalidSemVer):
		return "it is not MAJOR.MINOR.PATCH"
	case errors.Is(err, semver.ErrSegmentStartsZero):
		return "a number starts with 0"
	case errors.Is(err, semver.ErrInvalidPrerelease):
		return "the -prerelease is not dot-separated identifiers of letters, digits and dashes"
	case errors.Is(err, semver.ErrInvalidMetadata):
		return "the +build is not dot-separated identifiers of letters, digits and dashes"
	}
	return err.Error()
}

// CheckVersion returns nil if v is a semantic version (semver 2.0.0):
// MAJOR.MINOR.PATCH with an optional -PRERELEASE and an optional +BUILD,
// e.g. "1.2.0", "2.0.0-rc.1", "1.2.0+build.5"; otherwise an error saying
// what is wrong.
func CheckVersion(v string) error {
	_, err := parseVersion(v)
	return err
}

// ValidVersion reports whether v is a semantic version (see CheckVersion).
func ValidVersion(v string) bool { return CheckVersion(v) == nil }

// CompareVersions orders versions by semver precedence: -1, 0 or 1. A
// prerelease sorts before its release, numeric identifiers compare as
// numbers (rc.2 < rc.10) and +build metadata is ignored (1.0.0+build.5
// and 1.0.0 compare equal). Invalid versions sort before valid ones, and
// among themselves by text.
func CompareVersions(a, b string) int {
	va, errA := parseVersion(a)
	vb, errB := parseVersion(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return va.Compare(vb)
}

// constraintOps are the documented operators, each before its prefixes.
var constraintOps = []string{"~>", ">=", "<=", "!=", ">", "<", "="}

// parseConstraint reads a constraint: a comma-separated list of
// "OP VERSION" with OP one of =, !=, >, >=, <, <=, ~> and VERSION
// MAJOR[.MINOR[.PATCH]] (missing numbers are 0) or a full version with a
// -prerelease; a bare version means "=". "~> 1.2" allows 1.2.0 up to, not
// including, 2.0.0 (so does "~> 1"); "~> 1.2.3" allows 1.2.3 up to 1.3.0.
// Each clause is its own library constraint, so a prerelease version meets
// a clause only when the clause names a prerelease.
func parseConstraint(constraint string) ([]*semver.Constraints, error) {
	var out []*semver.Constraints
	for _, part := range strings.Split(constraint, ",") {
		part = strings.TrimSpace(part)
		op, ver := "=", part
		for _, o := range constraintOps {
			if rest, ok := strings.CutPrefix(part, o); ok {
				op, ver = o, strings.TrimSpace(rest)
				break
			}
		}
		if ver == "" {
			return nil, fmt.Errorf("%q is not OP VERSION", part)
		}
		v, parts, err := constraintVersion(ver)
		if err != nil {
			return nil, fmt.Errorf("%q is not OP VERSION: %w", part, err)
		}
		text := op + v.String()
		if op == "~>" {
			text = ">=" + v.String()
			if upper := pessimisticBound(v, parts); upper != "" {
				text += ", <" + upper
			}
		}
		c, err := semver.NewConstraint(text)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// constraintVersion parses the VERSION of a constraint clause and says how
// many of MAJOR.MINOR.PATCH it names.
func constraintVersion(ver string) (*semver.Version, int, error) {
	switch {
	case strings.ContainsAny(ver, "^~"):
		return nil, 0, errors.New(`^ and ~ are not operators here; "~> 1.2" allows 1.2.0 up to, not including, 2.0.0 and "~> 1.2.3" allows 1.2.3 up to 1.3.0`)
	case strings.Contains(ver, "|"):
		return nil, 0, errors.New("there is no OR: a constraint's parts all apply")
	case strings.ContainsAny(ver, " \t"):
		return nil, 0, errors.New(`separate the parts with commas, as in ">= 1.0.0, < 2.0.0"`)
	}
	core, suffix := ver, ""
	if i := strings.IndexAny(ver, "-+"); i >= 0 {
		core, suffix = ver[:i], ver[i:]
	}
	parts := strings.Count(core, ".") + 1
	full := ver
	if parts < 3 {
		if suffix != "" {
			return nil, 0, fmt.Errorf("%q: a -prerelease goes with a full MAJOR.MINOR.PATCH", ver)
		}
		full += strings.Repeat(".0", 3-parts)
	}
	v, err := semver.StrictNewVersion(full)
	switch {
	case err != nil && full != ver:
		return nil, 0, fmt.Errorf("%q is not MAJOR[.MINOR[.PATCH]]: %s", ver, reason(err))
	case err != nil:
		return nil, 0, versionError(ver, err)
	}
	if v.Metadata() != "" {
		return nil, 0, fmt.Errorf("%q: +build metadata does not count when comparing versions; leave it out", ver)
	}
	return v, parts, nil
}

// pessimisticBound is the exclusive upper bound of "~> v" where v names
// parts numbers: the next minor for MAJOR.MINOR.PATCH, else (or when the
// minor is the largest uint64) the next major; "" when the major is the
// largest too, as nothing lies above it then.
func pessimisticBound(v *semver.Version, parts int) string {
	if parts == 3 && v.Minor() < math.MaxUint64 {
		return fmt.Sprintf("%d.%d.0", v.Major(), v.Minor()+1)
	}
	if v.Major() < math.MaxUint64 {
		return fmt.Sprintf("%d.0.0", v.Major()+1)
	}
	return ""
}

// CheckConstraint returns nil if constraint is a non-empty version
// constraint MatchConstraint reads, every part of it.
func CheckConstraint(constraint string) error {
	if strings.TrimSpace(constraint) == "" {
		return errors.New("the constraint is empty")
	}
	_, err := parseConstraint(constraint)
	return err
}

// MatchConstraint reports whether version v meets a constraint: a
// comma-separated list of "OP VERSION" with OP one of =, !=, >, >=, <, <=,
// ~> (pessimistic: "~> 1.2" allows 1.x from 1.2 up, "~> 1.2.3" allows
// 1.2.x from 1.2.3 up); a bare version means "=". An empty constraint
// allows any version. A prerelease matches only when named exactly: every
// part must name a prerelease. Versions compare by semver precedence (see
// CompareVersions). An invalid constraint is an error; an invalid version
// meets no constraint but the empty one.
func MatchConstraint(v, constraint string) (bool, error) {
	if strings.TrimSpace(constraint) == "" {
		return true, nil
	}
	cs, err := parseConstraint(constraint)
	if err != nil {
		return false, err
	}
	sv, err := parseVersion(v)
	if err != nil {
		return false, nil
	}
	for _, c := range cs {
		if !c.Check(sv) {
			return false, nil
		}
	}
	return true, nil
}
