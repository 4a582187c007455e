//go:build !linux

package agent

import "os"

// fdatasync flushes a file to the disk (fsync where there is no
// fdatasync).
func fdatasync(f *os.File) error { return f.Sync() }
