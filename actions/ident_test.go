package actions

import (
	"regexp"
	"testing"
)

// The hand-written checks agree with the rules written as regular
// expressions, on every string of up to three characters over an alphabet
// with each kind of character they tell apart.
func TestValidEnvNameAndOutputKey_MatchTheRules(t *testing.T) {
	env := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	out := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	cases := []string{"", "PATH", "http_port", "9lives", "a.b", "x-y", "é", "a b", "a=b", "_changed"}
	alphabet := []string{"a", "Z", "0", "_", ".", "-", "=", "$"}
	for _, x := range alphabet {
		cases = append(cases, x)
		for _, y := range alphabet {
			cases = append(cases, x+y)
			for _, z := range alphabet {
				cases = append(cases, x+y+z)
			}
		}
	}
	for _, c := range cases {
		if validEnvName(c) != env.MatchString(c) {
			t.Errorf("%q: validEnvName=%v, rule=%v", c, validEnvName(c), env.MatchString(c))
		}
		if validOutputKey(c) != out.MatchString(c) {
			t.Errorf("%q: validOutputKey=%v, rule=%v", c, validOutputKey(c), out.MatchString(c))
		}
	}
}
