package actions

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

func TestRedactor_Write_SplitAcrossWrites(t *testing.T) {
	secrets := []string{"abcdef", "cd", "xyz"}
	input := "1 abcdef 2 cd 3 abc 4 xyz 5 abcdexyz 6 abcdef"
	want := "1 (sensitive) 2 (sensitive) 3 abc 4 (sensitive) 5 ab(sensitive)e(sensitive) 6 (sensitive)"
	for size := 1; size <= len(input); size++ {
		var buf bytes.Buffer
		r := newRedactor(&buf, secrets)
		for i := 0; i < len(input); i += size {
			end := min(i+size, len(input))
			if _, err := r.Write([]byte(input[i:end])); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Errorf("chunks of %d: got %q, want %q", size, buf.String(), want)
		}
	}
}

func TestSensitiveValues(t *testing.T) {
	req := Request{
		Attributes: map[string]json.RawMessage{
			"pw":    json.RawMessage(`"p\"w"`),
			"pin":   json.RawMessage(`1234`),
			"flag":  json.RawMessage(`true`),
			"unset": json.RawMessage(`null`),
			"env":   json.RawMessage(`{"A":"alpha","B":["beta"]}`),
			"open":  json.RawMessage(`"visible"`),
		},
		Sensitive: []string{"pw", "pin", "flag", "unset", "env", "missing"},
	}
	got := map[string]bool{}
	for _, s := range sensitiveValues(req) {
		got[s] = true
	}
	for _, want := range []string{`p"w`, `p\"w`, "1234", "alpha", "beta", `{"A":"alpha","B":["beta"]}`} {
		if !got[want] {
			t.Errorf("missing %q in %v", want, got)
		}
	}
	for _, not := range []string{"true", "null", "visible", ""} {
		if got[not] {
			t.Errorf("%q should not be redacted", not)
		}
	}
}

// A params value computed from a sensitive attribute is as secret as the
// attribute, whatever its text; one from other attributes is not.
func TestSensitiveValues_Params(t *testing.T) {
	req := Request{
		Action: plan.Action{Kind: "puppet", Class: "db", Params: map[string]plan.Expr{
			"password": {Source: "upper(pw)"},
			"dsn":      {Source: `"${user}:${pw}@db"`},
			"user":     {Source: "user"},
		}},
		Attributes: map[string]json.RawMessage{"pw": json.RawMessage(`"s3cret"`), "user": json.RawMessage(`"app"`)},
		Sensitive:  []string{"pw"},
	}
	got := map[string]bool{}
	for _, s := range sensitiveValues(req) {
		got[s] = true
	}
	for _, want := range []string{"s3cret", "S3CRET", "app:s3cret@db"} {
		if !got[want] {
			t.Errorf("missing %q in %v", want, got)
		}
	}
	if got["app"] {
		t.Errorf("user is not sensitive: %v", got)
	}
}

func TestParseOutputs(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"":                          nil,
		"a=1\nb = x=y\n\n# c=2\r\n": {"a": "1", "b": " x=y"},
		`{"a": 1, "b": "s", "c": {"d": [1, 2]}, "e": null}`: {"a": "1", "b": "s", "c": `{"d":[1,2]}`, "e": ""},
	} {
		got, _, err := parseOutputs([]byte(in))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", in, k, got[k], v)
			}
		}
	}
	for _, in := range []string{"novalue", "1a=x", "_x=1", "_changed=yes", `{"a": `, "[1]"} {
		if _, _, err := parseOutputs([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	_, changed, err := parseOutputs([]byte("_changed=true\n"))
	if err != nil || changed == nil || !*changed {
		t.Errorf("_changed=true: %v %v", changed, err)
	}
}
