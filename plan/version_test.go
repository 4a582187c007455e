package plan_test

import (
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// ascending lists versions in increasing precedence: the list of
// semver.org section 11, with rc.2 < rc.10 (numeric identifiers compare
// as numbers) and a few more.
var ascending = []string{
	"0.9.9",
	"1.0.0-1",
	"1.0.0-2",
	"1.0.0-10",
	"1.0.0-alpha",
	"1.0.0-alpha.1",
	"1.0.0-alpha.beta",
	"1.0.0-beta",
	"1.0.0-beta.2",
	"1.0.0-beta.11",
	"1.0.0-rc.1",
	"1.0.0-rc.2",
	"1.0.0-rc.10",
	"1.0.0",
	"1.0.1",
	"1.2.0",
	"1.10.0",
	"2.0.0-rc.1",
	"2.0.0",
	"10.0.0",
}

func TestCompareVersions_SemverPrecedence(t *testing.T) {
	for i, a := range ascending {
		for j, b := range ascending {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := plan.CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestCompareVersions_BuildMetadata: +build is a valid suffix and does not
// count in precedence (semver.org section 10).
func TestCompareVersions_BuildMetadata(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"1.0.0+build.5", "1.0.0"},
		{"1.0.0+build.5", "1.0.0+build.6"},
		{"1.0.0-rc.1+exp.sha.5114f85", "1.0.0-rc.1"},
		{"1.0.0+20130313144700", "1.0.0+21AF26D3----117B344092BD"},
	} {
		for _, v := range []string{tc.a, tc.b} {
			if !plan.ValidVersion(v) {
				t.Errorf("ValidVersion(%q) = false, want true", v)
			}
		}
		if got := plan.CompareVersions(tc.a, tc.b); got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", tc.a, tc.b, got)
		}
	}
	if got := plan.CompareVersions("1.0.0+build.5", "1.0.0-rc.10"); got != 1 {
		t.Errorf("CompareVersions(1.0.0+build.5, 1.0.0-rc.10) = %d, want 1", got)
	}
}

// TestValidVersion_Rejects: what semver 2.0.0 forbids, and the shorthands
// other tools accept, are not module versions.
func TestValidVersion_Rejects(t *testing.T) {
	for _, v := range []string{
		"", "1", "1.0", "1.0.0.0", "v1.0.0", " 1.0.0", "1.0.0 ",
		"01.0.0", "1.00.0", "1.0.00", // leading zeros
		"1.0.0-", "1.0.0-01", "1.0.0-rc.01", "1.0.0-rc..1", "1.0.0-.rc", "1.0.0-rc.", // bad prerelease
		"1.0.0+", "1.0.0+a..b", "1.0.0+a_b", // bad build metadata
		"1.x.0", "-1.0.0", "1.0.0-rc+", "1.0.0-ü",
		"18446744073709551616.0.0", // overflows uint64
	} {
		if plan.ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = true, want false", v)
		}
	}
	// Invalid versions sort before valid ones, and among themselves by text,
	// so a stray bad version in the state never becomes the latest.
	if got := plan.CompareVersions("1.0", "0.0.1"); got != -1 {
		t.Errorf("CompareVersions(1.0, 0.0.1) = %d, want -1", got)
	}
	if got := plan.CompareVersions("0.0.1", "x"); got != 1 {
		t.Errorf("CompareVersions(0.0.1, x) = %d, want 1", got)
	}
}

// TestMatchConstraint covers every form docs/dsl.md promises for
// requires: comma-separated "OP VERSION", OP one of = != > >= < <= ~>,
// VERSION MAJOR[.MINOR[.PATCH]], a bare version meaning =, and a
// prerelease matching only when the constraint names one.
func TestMatchConstraint(t *testing.T) {
	for _, tc := range []struct {
		constraint string
		yes, no    []string
	}{
		{"", []string{"0.0.1", "1.0.0", "1.0.0-rc.1"}, nil},
		{"1.2.0", []string{"1.2.0", "1.2.0+build.5"}, []string{"1.2.1", "1.1.9", "1.2.0-rc.1"}},
		{"1.2", []string{"1.2.0"}, []string{"1.2.1", "1.3.0"}},
		{"1", []string{"1.0.0"}, []string{"1.0.1", "1.1.0"}},
		{"= 1.2.0", []string{"1.2.0"}, []string{"1.2.1"}},
		{"=1.2.0", []string{"1.2.0"}, []string{"1.2.1"}},
		{"!= 1.2.0", []string{"1.1.0", "1.2.1", "2.0.0"}, []string{"1.2.0", "1.2.0+b", "1.3.0-rc.1"}},
		{"> 1.2", []string{"1.2.1", "2.0.0"}, []string{"1.2.0", "1.1.0", "1.3.0-rc.1"}},
		{">= 1.2", []string{"1.2.0", "1.9.0", "3.0.0"}, []string{"1.1.9", "1.2.0-rc.1"}},
		{"< 2", []string{"1.9.9", "0.1.0"}, []string{"2.0.0", "2.0.1", "1.5.0-rc.1", "2.0.0-rc.1"}},
		{"<= 1.2.3", []string{"1.2.3", "1.2.3+b", "1.0.0"}, []string{"1.2.4", "1.2.3-rc.1"}},
		{"~> 1.2", []string{"1.2.0", "1.2.9", "1.9.0", "1.2.0+build.1"}, []string{"1.1.9", "2.0.0", "1.3.0-rc.1", "2.0.0-rc.1"}},
		{"~>1.2", []string{"1.2.0", "1.9.0"}, []string{"2.0.0"}},
		{"~> 1.2.3", []string{"1.2.3", "1.2.10"}, []string{"1.2.2", "1.3.0", "1.2.4-rc.1"}},
		{"~> 1", []string{"1.0.0", "1.9.9"}, []string{"0.9.0", "2.0.0"}},
		{"~> 0.2", []string{"0.2.0", "0.9.0"}, []string{"0.1.0", "1.0.0"}},
		{">= 1.0, < 2.0", []string{"1.0.0", "1.5.0", "1.99.99"}, []string{"0.9.9", "2.0.0", "1.5.0-rc.1"}},
		{">= 1.2.0, < 2.0.0", []string{"1.2.0", "1.10.0"}, []string{"1.1.0", "2.0.0"}},
		{">=1.0,<2.0,!=1.5.0", []string{"1.4.0", "1.5.1"}, []string{"1.5.0", "2.0.0"}},
		// A prerelease matches only when the constraint names one; then
		// numeric identifiers compare as numbers.
		{"1.0.0-rc.10", []string{"1.0.0-rc.10"}, []string{"1.0.0-rc.2", "1.0.0"}},
		{">= 1.0.0-rc.2", []string{"1.0.0-rc.2", "1.0.0-rc.10", "1.0.0", "1.1.0"}, []string{"1.0.0-rc.1", "1.0.0-beta.11"}},
		{"< 1.0.0-rc.10", []string{"1.0.0-rc.2", "1.0.0-beta"}, []string{"1.0.0-rc.10", "1.0.0-rc.11", "1.0.0"}},
		{"~> 1.0.0-beta.2", []string{"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.5"}, []string{"1.0.0-beta.1", "1.1.0"}},
	} {
		for _, v := range tc.yes {
			if ok, err := plan.MatchConstraint(v, tc.constraint); err != nil || !ok {
				t.Errorf("MatchConstraint(%q, %q) = %v, %v; want true", v, tc.constraint, ok, err)
			}
		}
		for _, v := range tc.no {
			if ok, err := plan.MatchConstraint(v, tc.constraint); err != nil || ok {
				t.Errorf("MatchConstraint(%q, %q) = %v, %v; want false", v, tc.constraint, ok, err)
			}
		}
	}
}

// TestMatchConstraint_Invalid: what the docs do not promise is an error,
// not a guess. Other tools' forms (^, ~, x, ||, ranges) are among them:
// "~1.2" and "~> 1.2" would mean different things.
func TestMatchConstraint_Invalid(t *testing.T) {
	for _, c := range []string{
		",", ">= 1.0.0,", ", 1.0.0", ">=", "~>", "=> 1.0", "== 1.0", "~> one",
		"^1.2", "~1.2", "1.x", "1.2.*", "*", "1.0 || 2.0", "1.0 - 2.0", ">= 1.0 < 2.0",
		"v1.2.3", "01.2", "1.2.3.4", "1.02", ">= 1.0.0-rc.01", ">= 1.0.0-", "1.2-rc.1",
		"= 1.0.0+build.5", // build metadata does not count in precedence
	} {
		if ok, err := plan.MatchConstraint("1.0.0", c); err == nil {
			t.Errorf("MatchConstraint(1.0.0, %q) = %v, nil; want an error", c, ok)
		}
	}
}

// TestMatchConstraint_Edges: ~> 0.0.0 is a range like any other (not
// "any version"), a bound at the largest number does not overflow, an
// invalid version meets no constraint rather than failing the lookup.
func TestMatchConstraint_Edges(t *testing.T) {
	const max = "18446744073709551615"
	for _, tc := range []struct {
		v, constraint string
		want          bool
	}{
		{"0.0.5", "~> 0.0.0", true},
		{"0.1.0", "~> 0.0.0", false},
		{"5.0.0", "~> 0.0.0", false},
		{"0.5.0", "~> 0.0", true},
		{"1.0.0", "~> 0.0", false},
		{max + ".1.0", "~> " + max, true},
		{max + "." + max + ".1", "~> " + max + "." + max + ".0", true},
		{max + ".0.0", "~> 1", false},
		{"1.0.0-rc.01", ">= 0.0.0", false},
		{"not-a-version", "~> 1", false},
	} {
		got, err := plan.MatchConstraint(tc.v, tc.constraint)
		if err != nil || got != tc.want {
			t.Errorf("MatchConstraint(%q, %q) = %v, %v; want %v", tc.v, tc.constraint, got, err, tc.want)
		}
	}
}

// TestCheckVersion_Errors: the error names the version and says what is
// wrong in words.
func TestCheckVersion_Errors(t *testing.T) {
	for v, want := range map[string]string{
		"1.0":                      `"1.0" is not a semantic version: it is not MAJOR.MINOR.PATCH`,
		"01.0.0":                   `"01.0.0" is not a semantic version: a number starts with 0`,
		"1.0.0-rc..1":              `"1.0.0-rc..1" is not a semantic version: the -prerelease is not dot-separated identifiers of letters, digits and dashes`,
		"1.0.0+":                   `"1.0.0+" is not a semantic version: the +build is not dot-separated identifiers of letters, digits and dashes`,
		"18446744073709551616.0.0": `"18446744073709551616.0.0" is not a semantic version: a number is too large`,
	} {
		if err := plan.CheckVersion(v); err == nil || err.Error() != want {
			t.Errorf("CheckVersion(%q) = %v, want %s", v, err, want)
		}
	}
	if err := plan.CheckVersion("1.0.0-rc.10+build.5"); err != nil {
		t.Errorf("CheckVersion(1.0.0-rc.10+build.5) = %v", err)
	}
}

func TestCheckConstraint(t *testing.T) {
	for _, c := range []string{"~> 1.2", ">= 1.0, < 2.0", ">= 1.2.0, < 2.0.0", "1.0.0-rc.1", "!= 1.5.0"} {
		if err := plan.CheckConstraint(c); err != nil {
			t.Errorf("CheckConstraint(%q) = %v", c, err)
		}
	}
	for _, c := range []string{"", "  ", "^1.2", ">= 1.0 < 2.0", "1.0 || 2.0"} {
		if err := plan.CheckConstraint(c); err == nil {
			t.Errorf("CheckConstraint(%q) = nil, want an error", c)
		}
	}
}
