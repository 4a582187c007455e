package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/dtkhq/dtk/internal/daemon"
)

type devCmd struct {
	Agents   int    `help:"Number of agents." default:"2"`
	HTTPAddr string `help:"Coordinator API address." default:"127.0.0.1:7070"`
	DataDir  string `help:"State folder (default: a temporary folder removed on exit)." type:"path"`
}

func (c *devCmd) Run(ctx context.Context, log *slog.Logger, out io.Writer) error {
	dev, err := daemon.StartDev(ctx, daemon.DevConfig{
		Agents: c.Agents, DataDir: c.DataDir, HTTPAddr: c.HTTPAddr, Version: version, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dtk dev cluster is up (state in %s)\n", dev.DataDir)
	fmt.Fprintf(out, "  coordinator  http://%s\n", dev.HTTPAddr)
	for _, a := range dev.Agents {
		fmt.Fprintf(out, "  %-12s %s  %s\n", a.Name, a.Address, labels(a.Labels))
	}
	fmt.Fprintf(out, "\nReach it with dtkctl (default address), e.g.:\n  export DTK_ADDR=%s\n  dtkctl node list\nPress Ctrl-C to stop.\n", dev.HTTPAddr)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping dev cluster")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	dev.Shutdown(sctx)
	return nil
}

func labels(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
