package acl

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "rules.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorizer_MostSpecificPrefixWins_DenyWins(t *testing.T) {
	app := mustParse(t, `
service "app-" { policy = "deploy" }
service ""     { policy = "read" }
service "app-secret" { policy = "deny" }
module "app-"  { policy = "write" }
node { policy = "read" }
acl = "read"
`)
	other := mustParse(t, `service "app-" { policy = "deny" }`)
	a := NewAuthorizer("token app", app)
	cases := []struct {
		need Need
		want bool
	}{
		{Need{KindService, "app-api", Deploy}, true},
		{Need{KindService, "env-prod", Read}, true},
		{Need{KindService, "env-prod", Write}, false},
		{Need{KindService, "app-secret-db", Read}, false},
		{Need{KindModule, "app-web", Write}, true},
		{Need{KindModule, "env", Read}, false},
		{Need{KindNode, "", Read}, true},
		{Need{KindNode, "", Write}, false},
		{Need{KindOperator, "", Read}, false},
		{Need{KindACL, "", Read}, true},
		{Need{KindACL, "", Write}, false},
	}
	for _, c := range cases {
		if got := a.Allowed(c.need); got != c.want {
			t.Errorf("%s: %v, want %v", c.need, got, c.want)
		}
	}
	// The same prefix denied by another policy of the token: deny wins.
	b := NewAuthorizer("token both", app, other)
	if b.Allowed(Need{KindService, "app-api", Read}) {
		t.Error("deny from a second policy did not win")
	}
	if err := b.Check(Need{KindService, "app-api", Deploy}); err == nil || !strings.Contains(err.Error(), `service "app-api" deploy`) {
		t.Errorf("refusal: %v", err)
	}
	if !Manager("m").Allowed(Need{KindOperator, "", Write}) {
		t.Error("manager refused")
	}
}

func TestParse_Errors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`service "a" { policy = "deploy" }` + "\n" + `module "a" { policy = "deploy" }`, `rules.hcl:2:23: module: policy "deploy" is not one of`},
		{`service "a" { policy = "admin" }`, `rules.hcl:1:24: service: policy "admin"`},
		{`service "a" { }`, `rules.hcl:1:13: Missing required argument`},
		{`servce "a" { policy = "read" }`, `rules.hcl:1:1: Unsupported block type`},
		{`service "a" { policy = "read" }` + "\n" + `service "a" { policy = "write" }`, "rule given twice"},
		{`acl = 3`, "policy must be a string"},
		{`service "a" {`, "rules.hcl:1:"},
	} {
		_, err := Parse([]byte(c.src), "rules.hcl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
	if _, err := Parse(make([]byte, MaxRulesBytes+1), "big.hcl"); err == nil {
		t.Error("oversized rules accepted")
	}
}

func TestParse_RefusesNestingBomb(t *testing.T) {
	n := 30000 // rules hold at most MaxRulesBytes
	src := "service \"a\" {\n  policy = " + strings.Repeat("(", n) + `"read"` + strings.Repeat(")", n) + "\n}\n"
	_, err := Parse([]byte(src), "rules.hcl")
	if err == nil || !strings.Contains(err.Error(), "rules.hcl:2:") || !strings.Contains(err.Error(), "expressions nest deeper than 64 levels") {
		t.Fatalf("Parse: %.300v, want the nesting limit at rules.hcl:2:", err)
	}
}
