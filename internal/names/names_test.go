package names

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written check agrees with the rule written as a regular
// expression, on edge cases and on every short string over a small
// alphabet.
func TestValid_MatchesTheRule(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	cases := []string{"", "a", "A", "-a", ".a", "_a", "a-", "a.b_c-d", "web-1", "Web", "a b", "é",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a\n", "0"}
	alphabet := []string{"a", "0", "-", ".", "_", "Z", "/"}
	for _, x := range alphabet {
		for _, y := range alphabet {
			for _, z := range alphabet {
				cases = append(cases, x+y+z)
			}
		}
	}
	for _, c := range cases {
		if Valid(c) != re.MatchString(c) {
			t.Errorf("%q: Valid=%v, rule=%v", c, Valid(c), re.MatchString(c))
		}
	}
}

// shortStrings are edge cases and every string of up to three characters
// over a small alphabet that holds each kind of character the rules tell
// apart.
func shortStrings(long ...string) []string {
	cases := append([]string{"", "a", "A", "-a", ".a", "_a", "a-", "a.b_c-d", "web-1", "Web", "a b", "é",
		"a\n", "0", "$", "a$", "a$$", "$a", "_$", "a$b"}, long...)
	alphabet := []string{"a", "Z", "0", "-", ".", "_", "$", "/"}
	for _, x := range alphabet {
		cases = append(cases, x)
		for _, y := range alphabet {
			cases = append(cases, x+y)
			for _, z := range alphabet {
				cases = append(cases, x+y+z)
			}
		}
	}
	return cases
}

func TestValidAccount_MatchesTheRule(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?$`)
	for _, c := range shortStrings(strings.Repeat("a", 64), strings.Repeat("a", 64)+"$", strings.Repeat("a", 65),
		strings.Repeat("a", 63)+"$", strings.Repeat("a", 65)+"$", "www-data", "Domain_Users", "host$") {
		if ValidAccount(c) != re.MatchString(c) {
			t.Errorf("%q: ValidAccount=%v, rule=%v", c, ValidAccount(c), re.MatchString(c))
		}
	}
}

func TestValidLabelKey_MatchesTheRule(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)
	for _, c := range shortStrings(strings.Repeat("a", 63), strings.Repeat("a", 64), "bench_idle", "topology.zone", "k8s-node") {
		if ValidLabelKey(c) != re.MatchString(c) {
			t.Errorf("%q: ValidLabelKey=%v, rule=%v", c, ValidLabelKey(c), re.MatchString(c))
		}
	}
}
