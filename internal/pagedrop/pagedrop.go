// Package pagedrop lets a long-running process give back the resident
// pages of its own executable that it no longer uses.
//
// A Go binary is mapped privately from its file: the text (r-xp) and the
// read-only data (r--p) are never written, so their pages are the page
// cache's, shared with every other process running the same file. Start-up
// (package initialisers, flag and configuration parsing, TLS set-up, the
// first converge) touches a large part of them, and they stay mapped into
// the process long after it went idle: they count in its RSS as RssFile.
// Drop removes this process's page-table entries for those read-only
// mappings with madvise(MADV_DONTNEED). The pages stay in the page cache;
// whatever code or data the process runs or reads afterwards faults back
// in (a minor fault, no disk read while the cache holds it), so the RSS
// falls to what the process really touches from then on.
//
// Only read-only, private mappings of the process's own executable are
// dropped, and only those that hold no private (anonymous, copy-on-write)
// pages: a mapping that was ever written through — the relocations of a
// position-independent build, a debugger's or a uprobe's breakpoint — is
// left alone, because dropping it would discard the write. Writable
// mappings (the binary's data and bss) and anonymous memory are never
// touched. On systems other than Linux Drop does nothing.
package pagedrop

// Result tells what one Drop did.
type Result struct {
	// Mappings is how many mappings were dropped; Skipped how many
	// read-only mappings of the executable were left alone because they
	// hold private pages.
	Mappings, Skipped int
	// Bytes is how much of the dropped mappings was resident before.
	Bytes int64
}

// Supported says whether Drop does anything on this system.
func Supported() bool { return supported }
