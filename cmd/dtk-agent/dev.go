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
	Insecure bool   `help:"Run without TLS and gossip encryption (not recommended even in a lab)."`
}

func (c *devCmd) Run(ctx context.Context, log *slog.Logger, out io.Writer) error {
	dev, err := daemon.StartDev(ctx, daemon.DevConfig{
		Agents: c.Agents, DataDir: c.DataDir, HTTPAddr: c.HTTPAddr, Version: version, Logger: log, Insecure: c.Insecure,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dtk dev cluster is up (state in %s)\n", dev.DataDir)
	scheme := "https"
	if dev.PKI == nil {
		scheme = "http"
	}
	fmt.Fprintf(out, "  coordinator  %s://%s\n", scheme, dev.HTTPAddr)
	for _, a := range dev.Agents {
		fmt.Fprintf(out, "  %-12s %s  %s\n", a.Name, a.Address, labels(a.Labels))
	}
	if dev.PKI == nil {
		fmt.Fprintf(out, "\nINSECURE: no TLS, no authentication.\nReach it with dtkctl:\n  export DTK_ADDR=%s\n  dtkctl node list\nPress Ctrl-C to stop.\n", dev.HTTPAddr)
	} else {
		fmt.Fprintf(out, "\nThe cluster runs mutual TLS with its own CA (fingerprint %s).\nPoint dtkctl at it (the same lines are in %s):\n\n", dev.PKI.Fingerprint, dev.EnvFile)
		for _, l := range dev.PKI.Exports(dev.HTTPAddr) {
			fmt.Fprintf(out, "    %s\n", l)
		}
		fmt.Fprintf(out, "\n  dtkctl node list\n\nMore agents can enroll: dtkctl node token create, then\n  dtk-agent run --join 127.0.0.1:%d --join-token TOKEN --ca-fingerprint %s ...\nPress Ctrl-C to stop.\n", daemon.DefaultSerfPort, dev.PKI.Fingerprint)
	}
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
