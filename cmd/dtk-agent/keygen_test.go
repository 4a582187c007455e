package main

import (
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/secret"
)

func TestKeygen(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		code, out, errOut := runMain("keygen")
		if code != 0 || errOut != "" {
			t.Fatalf("keygen: exit %d, stderr %q", code, errOut)
		}
		if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("keygen printed %q, want one line", out)
		}
		if _, err := secret.ParseKey(out); err != nil {
			t.Fatalf("keygen printed %q: %v", out, err)
		}
		seen[out] = true
	}
	if len(seen) != 2 {
		t.Fatal("keygen printed the same key twice")
	}
}
