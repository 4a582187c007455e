package main

import "testing"

// Tails of one growing log print only what is new.
func TestNewOutput_PrintsWhatATailAdds(t *testing.T) {
	for _, c := range []struct{ prev, tail, want string }{
		{"", "a\nb\n", "a\nb\n"},
		{"a\nb\n", "a\nb\n", ""},
		{"line 1\nline 2\n", "line 1\nline 2\nline 3\n", "line 3\n"},
		// The window moved: the start of prev is gone from tail.
		{"line 1 is long enough\nline 2 is long enough\n", "line 2 is long enough\nline 3\n", "line 3\n"},
		// No overlap at all: all of it, after a mark.
		{"something else entirely, long\n", "fresh output\n", "[…]\nfresh output\n"},
		{"x\n", "x\ny\n", "y\n"},
	} {
		if got := newOutput(c.prev, c.tail); got != c.want {
			t.Errorf("newOutput(%q, %q) = %q, want %q", c.prev, c.tail, got, c.want)
		}
	}
}
