//go:build linux

package pagedrop

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

const smapsSample = `00400000-00c77000 r-xp 00000000 fe:00 9994853                            /usr/bin/dtk agent
Size:               8668 kB
Rss:                7324 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd 
00c77000-014d9000 r--p 00877000 fe:00 9994853                            /usr/bin/dtk agent
Size:               8584 kB
Rss:                7944 kB
Anonymous:             8 kB
VmFlags: rd mr mw me sd 
014d9000-0156c000 rw-p 010d9000 fe:00 9994853                            /usr/bin/dtk agent
Rss:                 460 kB
Anonymous:            60 kB
0156c000-035b3000 rw-p 00000000 00:00 0 
Rss:                 188 kB
Anonymous:           188 kB
7f48c741a000-7f48c7422000 r--s 00000000 fe:00 10003015                   /var/lib/dtk/agent/agent.db
Rss:                  24 kB
Anonymous:             0 kB
7f48c75cf000-7f48c75d1000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
`

func TestParseSmaps_HeaderRssAnonymousAndPathsWithSpaces(t *testing.T) {
	ms, err := parseSmaps([]byte(smapsSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("%d mappings, want 6", len(ms))
	}
	m := ms[0]
	if m.start != 0x400000 || m.end != 0xc77000 || m.perms != "r-xp" || m.inode != 9994853 || m.path != "/usr/bin/dtk agent" || m.rss != 7324<<10 || m.anon != 0 {
		t.Fatalf("first mapping: %+v", m)
	}
	if ms[1].anon != 8<<10 || ms[3].path != "" || ms[5].path != "[vdso]" {
		t.Fatalf("mappings: %+v", ms)
	}
}

func TestDropCandidate_OnlyTheExecutablesReadOnlyPrivateMappings(t *testing.T) {
	ms, err := parseSmaps([]byte(smapsSample))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		if dropCandidate(m, "/usr/bin/dtk agent", 9994853) {
			got = append(got, m.perms)
		}
	}
	// The text and rodata; not the data (rw-p), not bss, not the bbolt
	// file (another file, shared), not the vdso.
	if strings.Join(got, ",") != "r-xp,r--p" {
		t.Fatalf("candidates %v", got)
	}
	// The rodata holds a private page (a relocation, a breakpoint): only
	// the text goes.
	drop, skipped := toDrop(ms, "/usr/bin/dtk agent", 9994853)
	if len(drop) != 1 || drop[0].perms != "r-xp" || skipped != 1 {
		t.Fatalf("drop %+v, skipped %d", drop, skipped)
	}
	// Another binary with the same path (replaced on disk) is not ours.
	if dropCandidate(ms[0], "/usr/bin/dtk agent", 1) {
		t.Fatal("inode not checked")
	}
}

// rssFile is this process's RssFile in KiB.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RssFile:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no RssFile in /proc/self/status")
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

func TestDrop_LowersRssFileAndTheProcessKeepsRunning(t *testing.T) {
	// Touch plenty of code and read-only data first.
	var sb strings.Builder
	for r := rune(0); r < 0x20000; r += 7 {
		if unicode.IsUpper(r) {
			sb.WriteRune(unicode.ToLower(r))
		}
	}
	before := rssFile(t)
	res, err := Drop()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if res.Mappings == 0 || res.Bytes == 0 {
		t.Fatalf("nothing dropped: %+v", res)
	}
	if after >= before {
		t.Fatalf("RssFile %d KiB before, %d KiB after dropping %+v", before, after, res)
	}
	// The code and tables fault back in: the same work gives the same
	// answer.
	var again strings.Builder
	for r := rune(0); r < 0x20000; r += 7 {
		if unicode.IsUpper(r) {
			again.WriteRune(unicode.ToLower(r))
		}
	}
	if again.String() != sb.String() || sb.Len() == 0 {
		t.Fatal("different result after the drop")
	}
	if _, err := Drop(); err != nil {
		t.Fatalf("second drop: %v", err)
	}
	t.Logf("RssFile %d KiB → %d KiB (%+v)", before, after, res)
}
