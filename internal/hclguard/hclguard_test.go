package hclguard

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestConfig_Limits(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }
	for _, c := range []struct {
		name, src string
		want      string // "" when accepted
	}{
		{"64 parens", "a = " + nest(MaxDepth-1) + "\n", ""},
		{"65 parens", "a = " + nest(MaxDepth+1) + "\n", "x.hcl:1:69: expressions nest deeper than 64 levels"},
		{"mixed", "a = " + strings.Repeat("[{b=(", 30) + "1" + strings.Repeat(")}]", 30), "expressions nest deeper than 64 levels"},
		{"blocks", strings.Repeat("b {\n", 100) + strings.Repeat("}\n", 100), "x.hcl:65:3: expressions nest deeper"},
		{"sequential parens", "a = " + strings.Repeat(nest(40)+" + ", 100) + "1\n", ""},
		{"strings", "a = " + strings.Repeat(`"${`, 100) + "1" + strings.Repeat(`}"`, 100), "expressions nest deeper"},
		{"directives", "a = <<EOT\n" + strings.Repeat("%{if true}", 100) + strings.Repeat("%{endif}", 100) + "\nEOT\n", "expressions nest deeper"},
		{"sequential directives", "a = <<EOT\n" + strings.Repeat("%{if true}x%{endif}", 100) + "\nEOT\n", ""},
		{"unary", "a = " + strings.Repeat("!", 100) + "true\n", "expressions nest deeper"},
		{"ternary", "a = " + strings.Repeat("true ? 1 : ", 100) + "1\n", "expressions nest deeper"},
		{"ternary per item", "a = {\n" + strings.Repeat("  b = true ? 1 : 2\n", 100) + "}\nc = [" + strings.Repeat("true ? 1 : 2, ", 100) + "]\n", ""},
		{"chain", "a = 1" + strings.Repeat(" + 1", MaxChain+1) + "\n", "chains more than 10000 operators"},
		{"index chain", "a = b" + strings.Repeat("[c]", MaxChain+1) + "\n", "chains more than 10000 operators"},
		{"chain per attribute", strings.Repeat("a = 1 + 1 + 1\n", MaxChain), ""},
		// Brackets in strings, heredocs and comments are text.
		{"text", "a = \"" + strings.Repeat("(", 1000) + "\\\"((\"\n" +
			"b = <<EOT\n" + strings.Repeat("([{", 1000) + "\n  EOT\n" +
			"# " + strings.Repeat("(", 1000) + "\n// " + strings.Repeat("(", 1000) + "\n/* " + strings.Repeat("(", 1000) + " */\n" +
			"c = \"$${" + strings.Repeat("(", 1000) + "}\"\n", ""},
		// A quoted string goes on past a newline (a syntax error), as the
		// parser reads it: what follows its end is counted.
		{"string past newline", "a = \"x\n\" " + nest(100) + "\n", "x.hcl:2:"},
		{"after heredoc", "a = <<EOT\nx\nEOT\nb = " + nest(100) + "\n", "x.hcl:4:"},
	} {
		got := message(Config([]byte(c.src), "x.hcl", hcl.InitialPos))
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: refused: %s", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestTemplate_Limits(t *testing.T) {
	if got := message(Template([]byte(strings.Repeat("(", 1000)+"${a}%{if b}x%{endif}\n"), "t", hcl.InitialPos)); got != "" {
		t.Errorf("literal text refused: %s", got)
	}
	got := message(Template([]byte("x\n  ${"+strings.Repeat("(", 100)+"1"+strings.Repeat(")", 100)+"}"), "t", hcl.InitialPos))
	if !strings.HasPrefix(got, "t:2:68: expressions nest deeper than 64 levels") {
		t.Errorf("%q, want the limit at t:2:68", got)
	}
}

// Every HCL file of the repository's examples and good test modules passes.
func TestConfig_AcceptsRepositoryFiles(t *testing.T) {
	n := 0
	for _, root := range []string{"../../examples", "../../dsl/testdata/good"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !strings.HasSuffix(p, ".hcl") {
				return err
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			if got := message(Config(src, p, hcl.InitialPos)); got != "" {
				t.Error(got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatal("no files checked")
	}
}

// message is "file:line:col: summary" of the one diagnostic, or "".
func message(d hcl.Diagnostics) string {
	if len(d) == 0 {
		return ""
	}
	r := d[0].Subject
	return fmt.Sprintf("%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, d[0].Summary)
}

func TestLimits_Config_DepthAndSetting(t *testing.T) {
	src := []byte("x = " + strings.Repeat("(", 20) + "1" + strings.Repeat(")", 20) + "\n")
	if d := Config(src, "f.hcl", hcl.InitialPos); d.HasErrors() {
		t.Fatalf("default depth: %v", d)
	}
	d := Limits{Depth: 10, Setting: "limits.nesting_depth"}.Config(src, "f.hcl", hcl.InitialPos)
	if !d.HasErrors() || !strings.Contains(d.Error(), "deeper than 10 levels (limits.nesting_depth)") ||
		!strings.Contains(d.Error(), "raise limits.nesting_depth in the coordinator config") {
		t.Fatalf("depth 10: %v, want the setting named", d)
	}
}
