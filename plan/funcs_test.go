package plan

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestLength(t *testing.T) {
	for _, tc := range []struct {
		in   cty.Value
		want cty.Value
	}{
		{cty.StringVal("héllo"), cty.NumberIntVal(5)},
		{cty.ListVal([]cty.Value{cty.True, cty.False}), cty.NumberIntVal(2)},
		{cty.MapValEmpty(cty.String), cty.NumberIntVal(0)},
		{cty.ObjectVal(map[string]cty.Value{"a": cty.True}), cty.NumberIntVal(1)},
		{cty.TupleVal([]cty.Value{cty.True, cty.StringVal("x"), cty.Zero}), cty.NumberIntVal(3)},
		{cty.UnknownVal(cty.String), cty.UnknownVal(cty.Number)},
		{cty.DynamicVal, cty.UnknownVal(cty.Number)},
		{cty.StringVal("secret").Mark(sensitiveMark), cty.NumberIntVal(6).Mark(sensitiveMark)},
	} {
		got, err := lengthFunc.Call([]cty.Value{tc.in})
		if err != nil {
			t.Errorf("length(%#v): %v", tc.in, err)
			continue
		}
		if !got.RawEquals(tc.want) {
			t.Errorf("length(%#v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	if _, err := lengthFunc.Call([]cty.Value{cty.True}); err == nil {
		t.Errorf("length(true) succeeded")
	}
}

func TestTemplateFile(t *testing.T) {
	m := &Module{Name: "m", Version: "1.0.0", Texts: map[string]string{
		"templates/a.conf": "%{ for h in hosts ~}\nserver ${h}:${port};\n%{ endfor ~}\n",
		"templates/bad":    "${",
	}}
	f := FunctionsFor(m)["templatefile"]
	vars := cty.ObjectVal(map[string]cty.Value{
		"hosts": cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
		"port":  cty.NumberIntVal(80),
	})
	got, err := f.Call([]cty.Value{cty.StringVal("./templates/a.conf"), vars})
	if err != nil {
		t.Fatal(err)
	}
	if want := "server a:80;\nserver b:80;\n"; got.AsString() != want {
		t.Errorf("got %q, want %q", got.AsString(), want)
	}
	// An unknown variable makes the result unknown: the step waits.
	got, err = f.Call([]cty.Value{cty.StringVal("templates/a.conf"), cty.ObjectVal(map[string]cty.Value{
		"hosts": cty.TupleVal([]cty.Value{cty.StringVal("a")}), "port": cty.DynamicVal,
	})})
	if err != nil || got.IsKnown() {
		t.Errorf("with an unknown variable: %#v, %v", got, err)
	}
	// A sensitive variable makes the result sensitive.
	got, err = f.Call([]cty.Value{cty.StringVal("templates/a.conf"), cty.ObjectVal(map[string]cty.Value{
		"hosts": cty.TupleVal([]cty.Value{cty.StringVal("a")}), "port": cty.StringVal("x").Mark(sensitiveMark),
	})})
	if err != nil || !got.IsMarked() {
		t.Errorf("with a sensitive variable: %#v, %v", got, err)
	}
	for _, tc := range []struct {
		path string
		vars cty.Value
		want string
	}{
		{"templates/nope", vars, `no file "templates/nope" under the module's templates/ folder (it has templates/a.conf, templates/bad)`},
		{"templates/a.conf", cty.StringVal("x"), "the variables must be an object"},
		{"templates/a.conf", cty.EmptyObjectVal, `Unknown variable`},
		{"templates/bad", cty.EmptyObjectVal, "templates/bad:1:3: Missing expression"},
	} {
		_, err := f.Call([]cty.Value{cty.StringVal(tc.path), tc.vars})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("templatefile(%q): %v, want an error with %q", tc.path, err, tc.want)
		}
	}
	if _, err := FunctionsFor(nil)["templatefile"].Call([]cty.Value{cty.StringVal("templates/a.conf"), vars}); err == nil {
		t.Errorf("templatefile without a module succeeded")
	}
}
