package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	CPUModel     string            `json:"cpu_model"`
	Cores        int               `json:"cores"`
	MemoryGiB    float64           `json:"memory_gib"`
	Kernel       string            `json:"kernel"`
	OS           string            `json:"os"`
	GoVersion    string            `json:"go_version"`
	DtkVersion   string            `json:"dtk_version"`
	Tools        map[string]string `json:"tools"`
	LoadAvgStart string            `json:"loadavg_start"`
	LoadAvgEnd   string            `json:"loadavg_end,omitempty"`
	AgentDirFS   string            `json:"agent_dir_fs,omitempty"`
}

// DescribeMachine reads /proc and asks the tools for their versions.
func DescribeMachine(dtkVersion string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), DtkVersion: dtkVersion, Tools: map[string]string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if kb := meminfo("MemTotal"); kb > 0 {
		m.MemoryGiB = float64(kb) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	m.Tools["go (toolchain)"] = firstLine(run("go", "version"))
	m.Tools["puppet"] = firstLine(run("puppet", "--version"))
	m.Tools["ansible-playbook"] = firstLine(run("ansible-playbook", "--version"))
	m.Tools["bash"] = firstLine(run("bash", "--version"))
	for _, t := range []string{"salt-call", "nomad", "chef-client"} {
		if _, err := exec.LookPath(t); err != nil {
			m.Tools[t] = "not installed (cannot be installed here: no network beyond the Debian, Go and npm registries)"
		} else {
			m.Tools[t] = firstLine(run(t, "--version"))
		}
	}
	m.LoadAvgStart = LoadAvg()
	return m
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func meminfo(key string) uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

func run(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unavailable: " + err.Error()
	}
	return string(out)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// CPUBusy samples /proc/stat twice, d apart, and returns the share of all
// cores that was busy (any process: ours, other engineers' builds).
func CPUBusy(d time.Duration) float64 {
	a, at := procStat()
	time.Sleep(d)
	b, bt := procStat()
	if bt-at == 0 {
		return 0
	}
	return 1 - float64(b-a)/float64(bt-at)
}

// procStat returns idle+iowait and total jiffies of the "cpu" line.
func procStat() (idle, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, x := range f[1:] {
		v, _ := strconv.ParseUint(x, 10, 64)
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total
}
