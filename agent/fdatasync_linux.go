package agent

import (
	"os"
	"syscall"
)

// fdatasync flushes a file's data (and what is needed to read it back, not
// its times) to the disk.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
