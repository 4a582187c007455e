//go:build linux

package pagedrop

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const supported = true

// mapping is one line of /proc/self/smaps with the fields Drop needs.
type mapping struct {
	start, end uintptr
	perms      string
	inode      uint64
	path       string
	rss, anon  int64 // bytes
}

// Drop drops the resident pages of the executable's read-only mappings
// from this process's page tables (see the package comment).
func Drop() (Result, error) {
	var res Result
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return res, fmt.Errorf("pagedrop: %w", err)
	}
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return res, fmt.Errorf("pagedrop: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return res, fmt.Errorf("pagedrop: no inode for %s", exe)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return res, fmt.Errorf("pagedrop: %w", err)
	}
	ms, err := parseSmaps(smaps)
	if err != nil {
		return res, err
	}
	drop, skipped := toDrop(ms, exe, st.Ino)
	res.Skipped = skipped
	for _, m := range drop {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); e != 0 {
			return res, fmt.Errorf("pagedrop: madvise %x-%x: %w", m.start, m.end, e)
		}
		res.Mappings++
		res.Bytes += m.rss
	}
	return res, nil
}

// toDrop picks the mappings to drop: the executable's read-only private
// mappings with resident pages, none of them private (copy-on-write)
// ones; skipped counts those left alone for holding private pages.
func toDrop(ms []mapping, exe string, ino uint64) (drop []mapping, skipped int) {
	for _, m := range ms {
		if !dropCandidate(m, exe, ino) {
			continue
		}
		if m.anon != 0 {
			skipped++
			continue
		}
		if m.rss != 0 {
			drop = append(drop, m)
		}
	}
	return drop, skipped
}

// dropCandidate says whether m is a private, read-only mapping of the
// executable (path and inode both match: a binary replaced on disk since
// the start shows as "path (deleted)" in both readlink and smaps).
func dropCandidate(m mapping, exe string, ino uint64) bool {
	if len(m.perms) != 4 || m.perms[0] != 'r' || m.perms[1] != '-' || m.perms[3] != 'p' {
		return false
	}
	return m.inode == ino && m.inode != 0 && m.path == exe
}

// parseSmaps reads the header line, Rss and Anonymous of every mapping.
func parseSmaps(b []byte) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	cur := -1
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			// A "Key:   N kB" line of the current mapping.
			if cur < 0 {
				continue
			}
			switch k {
			case "Rss":
				out[cur].rss = kB(v)
			case "Anonymous":
				out[cur].anon = kB(v)
			}
			continue
		}
		m, err := parseHeader(line)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		cur = len(out) - 1
	}
	return out, sc.Err()
}

// parseHeader parses "start-end perms offset dev inode [path]".
func parseHeader(line string) (mapping, error) {
	var m mapping
	f := strings.Fields(line)
	if len(f) < 5 {
		return m, fmt.Errorf("pagedrop: unexpected smaps line %q", line)
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, fmt.Errorf("pagedrop: unexpected smaps line %q", line)
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	ino, err3 := strconv.ParseUint(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || end < start {
		return m, fmt.Errorf("pagedrop: unexpected smaps line %q", line)
	}
	m.start, m.end, m.perms, m.inode = uintptr(start), uintptr(end), f[1], ino
	// The path may contain spaces (and ends in " (deleted)" for a
	// replaced file): it is everything after the inode column.
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " ")
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	m.path = strings.TrimLeft(rest, " ")
	return m, nil
}

func kB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n << 10
}
