// Command residenttext says which packages' code a running Go process
// holds resident: it reads the function table of the process's executable
// (/proc/PID/exe, stripped or not) and the present bit of each page of its
// .text section (/proc/PID/pagemap), and attributes each resident page's
// bytes to the packages whose functions lie on it. It shows what an idle
// dtk-agent keeps of its binary after dropping its pages
// (docs/performance.md, idle agent RSS):
//
//	go run ./bench/cmd/residenttext [-top 40] PID
//
// Linux only; reading another process's pagemap needs the same user or
// root (page frame numbers are not needed, only the present bit).
package main

import (
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

const page = 4096

func main() {
	top := flag.Int("top", 40, "packages to list")
	flag.Parse()
	pid, err := strconv.Atoi(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: residenttext [-top N] PID")
		os.Exit(2)
	}
	if err := run(pid, *top); err != nil {
		fmt.Fprintln(os.Stderr, "residenttext:", err)
		os.Exit(1)
	}
}

func run(pid, top int) error {
	f, err := elf.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	text, pcln := f.Section(".text"), f.Section(".gopclntab")
	if text == nil || pcln == nil {
		return fmt.Errorf("not a Go executable (no .text or .gopclntab)")
	}
	data, err := pcln.Data()
	if err != nil {
		return err
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return err
	}
	defer pm.Close()
	first, last := text.Addr/page, (text.Addr+text.Size+page-1)/page
	entries := make([]byte, (last-first)*8)
	if _, err := pm.ReadAt(entries, int64(first*8)); err != nil {
		return fmt.Errorf("pagemap: %w", err)
	}
	present := func(addr uint64) bool {
		return binary.LittleEndian.Uint64(entries[(addr/page-first)*8:])>>63 == 1
	}
	size, res := map[string]uint64{}, map[string]uint64{}
	var total, resident uint64
	for _, fn := range tab.Funcs {
		p := pkgOf(fn.Name)
		for a := fn.Entry; a < fn.End; {
			next := min((a/page+1)*page, fn.End)
			size[p] += next - a
			total += next - a
			if present(a) {
				res[p] += next - a
				resident += next - a
			}
			a = next
		}
	}
	pkgs := make([]string, 0, len(size))
	for p := range size {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		return res[pkgs[i]] > res[pkgs[j]] || res[pkgs[i]] == res[pkgs[j]] && pkgs[i] < pkgs[j]
	})
	fmt.Printf("%-60s %12s %12s\n", "package", "resident KiB", "code KiB")
	for _, p := range pkgs[:min(top, len(pkgs))] {
		fmt.Printf("%-60s %12d %12d\n", p, res[p]>>10, size[p]>>10)
	}
	fmt.Printf("%-60s %12d %12d\n", "all functions", resident>>10, total>>10)
	return nil
}

// pkgOf is the package path of a function's symbol name
// (path/pkg.Func, path/pkg.(*T).M, path/pkg.F.func1).
func pkgOf(name string) string {
	i := strings.LastIndexByte(name, '/')
	if j := strings.IndexByte(name[i+1:], '.'); j >= 0 {
		return name[:i+1+j]
	}
	return name
}
