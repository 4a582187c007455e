package lazyre

import (
	"sync"
	"testing"
)

var testRE = New(`^a+$`)

// An expression is compiled on first use, once, even when first used by
// several goroutines at once.
func TestRegexp_CompiledOnceOnFirstUse(t *testing.T) {
	before := Compiled()
	if testRE.String() != `^a+$` || Compiled() != before {
		t.Fatalf("String compiled the expression or changed it: %q, %d compiled", testRE.String(), Compiled()-before)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !testRE.MatchString("aaa") || testRE.MatchString("ab") {
				t.Error("wrong match")
			}
		}()
	}
	wg.Wait()
	if got := Compiled() - before; got != 1 {
		t.Fatalf("compiled %d times, want 1", got)
	}
	if testRE.Get() != testRE.Get() {
		t.Fatal("Get returned different values")
	}
}

// A bad expression panics when first used, not when declared.
func TestRegexp_BadExpressionPanicsOnUse(t *testing.T) {
	bad := New(`(`)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	bad.MatchString("x")
}
