package main

import (
	"fmt"
	"io"
	"runtime"
)

type versionCmd struct{}

func (versionCmd) Run(out io.Writer) error {
	fmt.Fprintf(out, "dtk-agent %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
