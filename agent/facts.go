package agent

import (
	"bufio"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/dtkhq/dtk/plan"
)

// Facts discovers what this machine is. address is the agent's advertised
// address (its gossip bind address), which templates see as node.X.address.
func Facts(address, version string) plan.Facts {
	host, _ := os.Hostname()
	f := plan.Facts{
		Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, Address: address,
		CPUs: runtime.NumCPU(), MemoryBytes: memTotal(), AgentVersion: version,
	}
	if ifaces, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifaces {
			if ipn, ok := a.(*net.IPNet); ok {
				f.Addresses = append(f.Addresses, ipn.IP.String())
			}
		}
	}
	return f
}

func memTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseUint(fields[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
