package plan

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$`)

// ValidVersion reports whether v is MAJOR.MINOR.PATCH[-PRERELEASE].
func ValidVersion(v string) bool { return semverRE.MatchString(v) }

// CompareVersions orders semantic versions: -1, 0 or 1. A prerelease sorts
// before its release; invalid versions sort before valid ones.
func CompareVersions(a, b string) int {
	ma, mb := semverRE.FindStringSubmatch(a), semverRE.FindStringSubmatch(b)
	switch {
	case ma == nil && mb == nil:
		return strings.Compare(a, b)
	case ma == nil:
		return -1
	case mb == nil:
		return 1
	}
	for i := 1; i <= 3; i++ {
		x, _ := strconv.ParseUint(ma[i], 10, 64)
		y, _ := strconv.ParseUint(mb[i], 10, 64)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case ma[4] == mb[4]:
		return 0
	case ma[4] == "":
		return 1
	case mb[4] == "":
		return -1
	}
	return strings.Compare(ma[4], mb[4])
}

// MatchConstraint reports whether version v meets a constraint: a
// comma-separated list of "OP VERSION" with OP one of =, !=, >, >=, <, <=,
// ~> (pessimistic: "~> 1.2" allows 1.x from 1.2 up, "~> 1.2.3" allows
// 1.2.x from 1.2.3 up); a bare version means "=". An empty constraint
// allows any version. A prerelease matches only when named exactly.
func MatchConstraint(v, constraint string) (bool, error) {
	if strings.TrimSpace(constraint) == "" {
		return true, nil
	}
	for _, part := range strings.Split(constraint, ",") {
		part = strings.TrimSpace(part)
		op, ver := "=", part
		for _, o := range []string{"~>", ">=", "<=", "!=", ">", "<", "="} {
			if rest, ok := strings.CutPrefix(part, o); ok {
				op, ver = o, strings.TrimSpace(rest)
				break
			}
		}
		full := ver
		parts := strings.Count(ver, ".") + 1
		for i := parts; i < 3; i++ {
			full += ".0"
		}
		if !ValidVersion(full) {
			return false, fmt.Errorf("bad version constraint %q", part)
		}
		cmp := CompareVersions(v, full)
		var ok bool
		switch op {
		case "=":
			ok = cmp == 0
		case "!=":
			ok = cmp != 0
		case ">":
			ok = cmp > 0
		case ">=":
			ok = cmp >= 0
		case "<":
			ok = cmp < 0
		case "<=":
			ok = cmp <= 0
		case "~>":
			m := semverRE.FindStringSubmatch(full)
			major, _ := strconv.ParseUint(m[1], 10, 64)
			minor, _ := strconv.ParseUint(m[2], 10, 64)
			upper := fmt.Sprintf("%d.0.0", major+1)
			if parts >= 3 {
				upper = fmt.Sprintf("%d.%d.0", major, minor+1)
			}
			ok = cmp >= 0 && CompareVersions(v, upper) < 0
		}
		if !ok {
			return false, nil
		}
		if strings.Contains(v, "-") && !strings.Contains(full, "-") {
			return false, nil
		}
	}
	return true, nil
}
