// Package lazyre holds regular expressions that are compiled the first
// time they are used rather than when their package is initialised.
//
// A package-level regexp.MustCompile runs in every process that links the
// package, and dtk-agent links every role: an agent that never compiles a
// module or validates an action would still compile the DSL's and the
// action runners' expressions at start (tens of kilobytes each for a
// bounded repetition such as {0,62}), keep them in its heap for good, and
// touch the code that compiles them (docs/performance.md, idle agent RSS).
package lazyre

import (
	"regexp"
	"sync"
	"sync/atomic"
)

// Regexp is a regular expression compiled on first use. Its zero value is
// not usable; make one with New, as a package-level variable.
type Regexp struct {
	expr string
	re   func() *regexp.Regexp
}

// compiled counts the expressions compiled so far in this process
// (tests check that start-up compiles none).
var compiled atomic.Int64

// New returns expr, to be compiled the first time it is used. A bad
// expression panics then, as regexp.MustCompile would at start; every
// expression should be exercised by its package's tests.
func New(expr string) *Regexp {
	return &Regexp{expr: expr, re: sync.OnceValue(func() *regexp.Regexp {
		compiled.Add(1)
		return regexp.MustCompile(expr)
	})}
}

// Get returns the compiled expression, compiling it if this is its first
// use. Safe for concurrent use.
func (r *Regexp) Get() *regexp.Regexp { return r.re() }

// MatchString reports whether s matches the expression.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// String is the expression's source text; it compiles nothing.
func (r *Regexp) String() string { return r.expr }

// Compiled is how many expressions made with New this process has
// compiled.
func Compiled() int64 { return compiled.Load() }
