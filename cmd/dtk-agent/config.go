package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dtkhq/dtk/internal/config"
)

type configCmd struct {
	Check configCheckCmd `cmd:"" help:"Check a configuration file: print ok, or every error with its position (exit 2)."`
}

type configCheckCmd struct {
	File string `arg:"" help:"Configuration file (HCL)." default:"${config_path}" type:"path"`
}

func (c *configCheckCmd) Run(out io.Writer) error {
	src, err := os.ReadFile(c.File)
	if err != nil {
		return usageError{fmt.Errorf("config check: %w", err)}
	}
	_, err = config.Check(src, c.File)
	var errs config.Errors
	if errors.As(err, &errs) {
		fmt.Fprint(out, errs.Verbose())
		fmt.Fprintf(out, "%d error(s) in %s\n", len(errs), c.File)
		return exitError(2)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "ok")
	return nil
}
