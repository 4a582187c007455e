package dsl

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/dtkhq/dtk/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// caseDirs returns the case folders under testdata/kind.
func caseDirs(t *testing.T, kind string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", kind, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no cases under testdata/%s", kind)
	}
	return dirs
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./dsl -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run go test ./dsl -update to accept)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

func TestGood(t *testing.T) {
	for _, dir := range caseDirs(t, "good") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			// expected.json lies in the module folder, so its own digest
			// is in Files; it cannot be part of itself.
			if _, ok := m.Files["expected.json"]; !ok && !*update {
				t.Errorf("Files lacks expected.json: %v", m.Files)
			}
			delete(m.Files, "expected.json")
			checkExprs(t, dir, m)
			checkDefaults(t, m)
			got, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "expected.json"), append(got, '\n'))
		})
	}
}

func TestBad(t *testing.T) {
	for _, dir := range caseDirs(t, "bad") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", m)
			}
			if m != nil {
				t.Errorf("Load returned a module with an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load error is %T, not *dsl.Error: %v", err, err)
			}
			for _, d := range e.Diagnostics() {
				if d.Summary == "" {
					t.Errorf("diagnostic without summary: %+v", d)
				}
				if d.File != "" && (d.Line < 1 || d.Column < 1 || d.Excerpt == "") {
					t.Errorf("diagnostic with a partial position: %+v", d)
				}
			}
			golden(t, filepath.Join(dir, "expected.txt"), []byte(err.Error()+"\n"))
		})
	}
}

// checkExprs checks that every expression's source text (instance and
// inject attributes, export values, validation conditions) parses on its
// own as an expression and sits at its recorded position.
func checkExprs(t *testing.T, dir string, m *plan.Module) {
	t.Helper()
	for what, e := range moduleExprs(m) {
		_, diags := hclsyntax.ParseExpression([]byte(e.Source), e.Pos.File,
			hcl.Pos{Line: e.Pos.Line, Column: e.Pos.Column})
		if diags.HasErrors() {
			t.Errorf("%s: source %q does not parse: %v", what, e.Source, diags)
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Pos.File))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(src), "\n")
		if line := lines[e.Pos.Line-1]; !strings.HasPrefix(line[e.Pos.Column-1:], strings.SplitN(e.Source, "\n", 2)[0]) {
			t.Errorf("%s: source %q is not at %s: %q", what, e.Source, e.Pos, line)
		}
	}
}

// moduleExprs lists every expression of a module by a name for messages.
func moduleExprs(m *plan.Module) map[string]plan.Expr {
	out := map[string]plan.Expr{}
	validations := func(prefix string, attrs []*plan.Attribute) {
		for _, a := range attrs {
			for i, v := range a.Validations {
				out[fmt.Sprintf("%s.%s.validation[%d]", prefix, a.Name, i)] = v.Condition
			}
		}
	}
	for _, c := range m.Components {
		validations(c.Name, c.Attributes)
		for an, a := range c.Actions {
			for name, e := range a.Params {
				out[c.Name+"."+an+".params."+name] = e
			}
		}
	}
	for _, tpl := range m.Templates {
		validations(tpl.Name, tpl.Inputs)
		for _, n := range tpl.Nodes {
			for _, inst := range n.Components {
				for name, e := range inst.Attributes {
					out[tpl.Name+"."+n.Name+"."+inst.Name+"."+name] = e
				}
			}
		}
		for _, inst := range tpl.Injects {
			for name, e := range inst.Attributes {
				out[tpl.Name+".inject."+inst.Name+"."+name] = e
			}
		}
		for _, e := range tpl.Exports {
			out[tpl.Name+".export."+e.Name] = e.Value
		}
	}
	return out
}

// checkDefaults checks that every attribute's type is in canonical form and
// that its default decodes with that type, as the compiler will do.
func checkDefaults(t *testing.T, m *plan.Module) {
	t.Helper()
	var attrs []*plan.Attribute
	for _, c := range m.Components {
		attrs = append(attrs, c.Attributes...)
	}
	for _, tpl := range m.Templates {
		attrs = append(attrs, tpl.Inputs...)
	}
	for _, a := range attrs {
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "type", hcl.InitialPos)
		if diags.HasErrors() {
			t.Errorf("%s: type %q: %v", a.Name, a.Type, diags)
			continue
		}
		ty, diags := typeexpr.TypeConstraint(expr)
		if diags.HasErrors() {
			t.Errorf("%s: type %q: %v", a.Name, a.Type, diags)
			continue
		}
		if s := typeexpr.TypeString(ty); s != a.Type {
			t.Errorf("%s: type %q is not canonical (%q)", a.Name, a.Type, s)
		}
		if a.Default == nil {
			continue
		}
		if _, err := ctyjson.Unmarshal(a.Default, ty); err != nil {
			t.Errorf("%s: default %s does not decode as %s: %v", a.Name, a.Default, a.Type, err)
		}
	}
}

// TestPositions spells out a few positions of the full example.
func TestPositions(t *testing.T) {
	m, err := Load("testdata/good/full")
	if err != nil {
		t.Fatal(err)
	}
	p := func(line, col int) plan.Pos { return plan.Pos{File: "main.hcl", Line: line, Column: col} }
	c := m.Components["file"]
	tpl := m.Templates["site"]
	for _, tc := range []struct {
		what      string
		got, want plan.Pos
	}{
		{"component", c.Pos, p(7, 1)},
		{"attribute", c.Attribute("path").Pos, p(9, 3)},
		{"create", c.Actions["create"].Pos, p(27, 3)},
		{"template", tpl.Pos, p(38, 1)},
		{"input", tpl.Input("port").Pos, p(44, 3)},
		{"node", tpl.Nodes[1].Pos, p(58, 3)},
		{"instance", tpl.Nodes[0].Components[0].Pos, p(51, 5)},
		{"value", tpl.Nodes[0].Components[0].Attributes["content"].Pos, p(53, 17)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s at %s, want %s", tc.what, tc.got, tc.want)
		}
	}
	if got := tpl.Nodes[0].Components[0].Attributes["content"].Source; got != `"${input.greeting} from ${self.name}"` {
		t.Errorf("content source = %q", got)
	}
	if _, ok := m.Files[".cache/skipped.txt"]; ok {
		t.Errorf("Files holds a file of a dot-directory")
	}
	if got := c.Actions["create"].TimeoutSeconds; got != 120 {
		t.Errorf("TimeoutSeconds = %d, want 120", got)
	}
}

func TestDiagnosticJSON(t *testing.T) {
	_, err := Load("testdata/bad/unknown_component")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	diags := e.Diagnostics()
	if len(diags) != 2 {
		t.Fatalf("got %d diagnostics, want 2: %v", len(diags), err)
	}
	got, err := json.Marshal(diags[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"file":"main.hcl","line":12,"column":5,"summary":"unknown component \"htp_server\"",` +
		`"detail":"did you mean \"http_server\"?","excerpt":"    component \"htp_server\" \"x\" {}\n    ^"}`
	if string(got) != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
}

func TestExcerptTabs(t *testing.T) {
	got := excerpt([]byte("a\n\tx = é + y\nb"), len("a\n\tx = é + "))
	want := "\tx = é + y\n\t        ^"
	if got != want {
		t.Errorf("excerpt = %q, want %q", got, want)
	}
}

func TestMissingFolder(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

func TestNoHCLFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.hcl"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if !strings.HasPrefix(err.Error(), "no .hcl files in module folder: ") {
		t.Errorf("err = %q", err)
	}
}

// TestDocExample loads the example of the package documentation.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, line := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok {
			src.WriteString(rest + "\n")
		}
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"main.hcl": src.String(), "scripts/create.sh": "true\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, src.String())
	}
	if len(m.Components) != 1 || len(m.Templates) != 1 {
		t.Errorf("got %d components, %d templates", len(m.Components), len(m.Templates))
	}
}
