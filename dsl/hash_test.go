package dsl

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vmHWM is the process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/self/status")
	return 0
}

// Load hashes a module's files without holding them in memory: a large
// asset (a sparse file here, so the test costs no disk) does not raise the
// process's peak RSS by its size.
func TestLoad_HashesLargeAssetsStreaming(t *testing.T) {
	dir := t.TempDir()
	src := "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	const size = 512 << 20
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "big.bin"), size); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak where allowed
	before := vmHWM(t)
	m, err := Load(dir)
	grew := vmHWM(t) - before
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS grew %d MiB loading a module with a %d MiB asset", grew>>20, size>>20)
	// sha256 of 512 MiB of zero bytes.
	const want = "sha256:9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"
	if got := m.Files["big.bin"]; got != want {
		t.Errorf("big.bin digest %s, want %s", got, want)
	}
	if grew > 100<<20 {
		t.Errorf("peak RSS grew %d MiB loading a module with a %d MiB asset", grew>>20, size>>20)
	}
}
