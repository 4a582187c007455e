// Command idlecmp runs figure 4's idle cluster (bench.StartIdle: 3
// coordinators, 3 agents, one service deployed, then left alone) for
// several builds side by side, each on its own loopback prefix, and prints
// each agent's VmRSS, RssAnon, RssFile, peak and CPU at the end, with the
// median per build. It compares binaries on the same machine at the same
// time, so background load falls on all of them:
//
//	go run ./bench/cmd/idlecmp -idle 12m after=bin@127.0.208 before=/tmp/main-bin@127.0.209
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/bench"
)

func main() {
	idle := flag.Duration("idle", 2*time.Minute, "idle period")
	stagger := flag.Duration("stagger", 20*time.Second, "delay between starting one build's cluster and the next")
	work := flag.String("work", "", "work folder (default: a new folder under $TMPDIR)")
	insecure := flag.Bool("insecure", false, "plain HTTP, no ACLs")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: idlecmp [flags] label=BINDIR@PREFIX ...")
		flag.PrintDefaults()
	}
	flag.Parse()
	type build struct{ label, bin, prefix string }
	var builds []build
	for _, a := range flag.Args() {
		label, rest, ok1 := strings.Cut(a, "=")
		bin, prefix, ok2 := strings.Cut(rest, "@")
		if !ok1 || !ok2 {
			flag.Usage()
			os.Exit(2)
		}
		builds = append(builds, build{label, filepath.Join(bin, "dtk-agent"), prefix})
	}
	if len(builds) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "idlecmp-")
		if err != nil {
			log.Fatal(err)
		}
		dir = d
	}
	results := make([]*bench.FootprintResult, len(builds))
	var wg sync.WaitGroup
	var started []*bench.IdleBench
	for i, b := range builds {
		if i > 0 {
			time.Sleep(*stagger)
		}
		log.Printf("%s: starting %s on %s.x", b.label, b.bin, b.prefix)
		ib, err := bench.StartIdle(b.bin, filepath.Join(dir, b.label), b.prefix, *insecure, !*insecure)
		if err != nil {
			// The clusters already started would outlive this process.
			for _, s := range started {
				s.Stop()
			}
			log.Fatalf("%s: %v", b.label, err)
		}
		started = append(started, ib)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ib.Finish(*idle)
			log.Printf("%s: done", b.label)
		}()
	}
	wg.Wait()
	fmt.Printf("\n%s idle, work folder %s\n\n", *idle, dir)
	fmt.Println("| build | agent | VmRSS MiB | RssAnon | RssFile | highest sample after 1 min | peak | CPU % of a core |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for i, b := range builds {
		var rss, anon, file, high, peak, cpu []float64
		for _, a := range results[i].Agents {
			h := 0.0
			for _, s := range a.Samples {
				if s.Seconds > 60 && s.RSSMiB > h {
					h = s.RSSMiB
				}
			}
			fmt.Printf("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", b.label, a.Name, a.RSSMiB, a.AnonMiB, a.FileMiB, h, a.PeakMiB, a.CPUPercent)
			rss, anon, file, high, peak, cpu = append(rss, a.RSSMiB), append(anon, a.AnonMiB), append(file, a.FileMiB), append(high, h), append(peak, a.PeakMiB), append(cpu, a.CPUPercent)
		}
		fmt.Printf("| **%s median** | | **%.1f** | %.1f | %.1f | %.1f | %.1f | %.2f |\n", b.label, med(rss), med(anon), med(file), med(high), med(peak), med(cpu))
	}
	for i, b := range builds {
		fmt.Printf("\n%s samples (VmRSS MiB every %s):\n", b.label, bench.SampleEvery)
		for _, a := range results[i].Agents {
			var s []string
			for _, x := range a.Samples {
				s = append(s, fmt.Sprintf("%.1f", x.RSSMiB))
			}
			fmt.Printf("  %s: %s\n", a.Name, strings.Join(s, " "))
		}
	}
}

func med(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
