//go:build !linux

package pagedrop

const supported = false

// Drop does nothing on this system.
func Drop() (Result, error) { return Result{}, nil }
