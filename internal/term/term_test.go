package term

import (
	"strings"
	"testing"
)

func TestStringWidth(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"✓ 2 ok", 6},
		{"日本", 4},                 // wide
		{"e\u0301", 1},            // e + combining acute
		{Green + "ok" + Reset, 2}, // escapes take no column
		{"a\x1b[1Ab", 2},
	} {
		if got := StringWidth(c.s); got != c.want {
			t.Errorf("StringWidth(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello world", 5, "hell…"},
		{"日本語のテキスト", 5, "日本…"}, // a wide rune never straddles the edge
		{"abc", 1, "…"},
		{"abc", 0, ""},
		{Red + "failed: db create" + Reset, 7, Red + "failed…" + Reset},
	} {
		got := Truncate(c.s, c.n)
		if got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
		if w := StringWidth(got); w > c.n && c.n > 0 {
			t.Errorf("Truncate(%q, %d) is %d columns wide", c.s, c.n, w)
		}
	}
}

func TestColorWanted(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if !ColorWanted(true, false, env("TERM", "xterm")) {
		t.Error("a terminal without NO_COLOR gets no colour")
	}
	for name, on := range map[string]bool{
		"not a terminal": ColorWanted(false, false, env()),
		"--no-color":     ColorWanted(true, true, env()),
		"NO_COLOR=1":     ColorWanted(true, false, env("NO_COLOR", "1")),
		"TERM=dumb":      ColorWanted(true, false, env("TERM", "dumb")),
	} {
		if on {
			t.Errorf("%s: colour on", name)
		}
	}
	if ColorWanted(true, false, env("NO_COLOR", "")) != true {
		t.Error("an empty NO_COLOR turns colour off (no-color.org: only a non-empty value does)")
	}
}

func TestStripAndPaint(t *testing.T) {
	s := Paint(true, Yellow, "running")
	if !strings.HasPrefix(s, "\x1b[33m") || Strip(s) != "running" {
		t.Errorf("Paint/Strip: %q", s)
	}
	if Paint(false, Yellow, "running") != "running" {
		t.Error("Paint(false) adds escapes")
	}
}

// Wrap breaks after a comma or a space where it can, at the width where it
// cannot, and loses nothing.
func TestWrap(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want []string
	}{
		{`["127.0.32.2","127.0.32.3","127.0.32.4"]`, 16, []string{`["127.0.32.2",`, `"127.0.32.3",`, `"127.0.32.4"]`}},
		{"abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"short", 40, []string{"short"}},
		{"two\nlines", 40, []string{"two", "lines"}},
		{"データベース", 5, []string{"デー", "タベ", "ース"}},
		{"", 10, []string{""}},
	} {
		got := Wrap(c.s, c.n)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("Wrap(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
