// Package term answers what a command-line program needs to know about
// where it prints: whether that is a terminal, how many columns it has,
// whether to colour; and it measures and cuts text by the columns it takes
// on screen (wide characters take two, combining marks and ANSI escape
// sequences none), so that a line drawn to fit never wraps.
package term

import (
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	xterm "golang.org/x/term"
	"golang.org/x/text/width"
)

// IsTerminal reports whether w is a terminal (a tty, or a Cygwin/MSYS pty).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Size is the number of columns and rows of the terminal w is, or 0, 0
// when w is not a terminal or its size cannot be read. It is read anew on
// every call: the user may resize the window at any time.
func Size(w io.Writer) (cols, rows int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	cols, rows, err := xterm.GetSize(int(f.Fd()))
	if err != nil || cols < 0 || rows < 0 {
		return 0, 0
	}
	return cols, rows
}

// ColorWanted says whether to colour output going to a terminal (tty):
// never when it is not one, when the user turned colour off with a flag
// (noColor) or with NO_COLOR set to anything non-empty (https://no-color.org),
// or when TERM is "dumb".
func ColorWanted(tty, noColor bool, getenv func(string) string) bool {
	return tty && !noColor && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// SGR colours (Select Graphic Rendition).
const (
	Reset  = "\x1b[0m"
	Bold   = "\x1b[1m"
	Dim    = "\x1b[2m"
	Red    = "\x1b[31m"
	Green  = "\x1b[32m"
	Yellow = "\x1b[33m"
)

// Paint wraps s in the SGR sequence sgr and a reset, or returns s as it is
// when on is false or sgr or s is empty.
func Paint(on bool, sgr, s string) string {
	if !on || sgr == "" || s == "" {
		return s
	}
	return sgr + s + Reset
}

// escapeLen is the length of the ANSI escape sequence at the start of s
// (CSI "ESC [ ... final" or a two-byte "ESC x"), or 0 when s does not
// start with ESC.
func escapeLen(s string) int {
	if len(s) == 0 || s[0] != 0x1b {
		return 0
	}
	if len(s) == 1 {
		return 1
	}
	if s[1] != '[' {
		return 2
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; c >= 0x40 && c <= 0x7e {
			return i + 1
		}
	}
	return len(s)
}

// RuneWidth is the number of columns r takes: 2 for East Asian wide and
// full-width characters, 0 for combining marks, format and control
// characters, 1 otherwise.
func RuneWidth(r rune) int {
	switch {
	case r < 0x20 || r == 0x7f:
		return 0
	case r < 0x7f:
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Cc):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// StringWidth is the number of columns s takes on screen.
func StringWidth(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if e := escapeLen(s[i:]); e > 0 {
			i += e
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += RuneWidth(r)
		i += size
	}
	return n
}

// Strip removes the ANSI escape sequences from s.
func Strip(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if e := escapeLen(s[i:]); e > 0 {
			i += e
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// Ellipsis marks where Truncate cut a line.
const Ellipsis = "…"

// Truncate cuts s to at most n columns, ending it with Ellipsis when it
// cut. Escape sequences are kept (they take no column); if s holds any and
// was cut, a reset follows so that a colour does not run on. n < 1 gives "".
func Truncate(s string, n int) string {
	if n < 1 {
		return ""
	}
	if StringWidth(s) <= n {
		return s
	}
	var b strings.Builder
	cols, escapes := 0, false
	for i := 0; i < len(s); {
		if e := escapeLen(s[i:]); e > 0 {
			b.WriteString(s[i : i+e])
			escapes = true
			i += e
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		w := RuneWidth(r)
		if cols+w > n-1 { // keep a column for the ellipsis
			break
		}
		b.WriteString(s[i : i+size])
		cols += w
		i += size
	}
	b.WriteString(Ellipsis)
	if escapes {
		b.WriteString(Reset)
	}
	return b.String()
}

// PadRight pads s with spaces to n columns (s wider than n is left as it is).
func PadRight(s string, n int) string {
	if w := StringWidth(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

// Wrap breaks s into lines of at most n columns, after a space or a comma
// where the line has one, else at n columns; every rune of s is kept, in
// order, and no line is empty. A newline in s ends a line. n < 1 gives s
// as one line. s should hold no escape sequence.
func Wrap(s string, n int) []string {
	if n < 1 {
		return []string{s}
	}
	var out []string
	for para := range strings.SplitSeq(s, "\n") {
		for StringWidth(para) > n {
			cut, cols, soft := 0, 0, 0
			for i, r := range para {
				if cols+RuneWidth(r) > n {
					break
				}
				cols += RuneWidth(r)
				cut = i + utf8.RuneLen(r)
				if r == ' ' || r == ',' {
					soft = cut
				}
			}
			if soft > 0 {
				cut = soft
			}
			if cut == 0 { // a rune wider than n
				_, cut = utf8.DecodeRuneInString(para)
			}
			out = append(out, para[:cut])
			para = para[cut:]
		}
		if para != "" || len(out) == 0 {
			out = append(out, para)
		}
	}
	return out
}
