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
