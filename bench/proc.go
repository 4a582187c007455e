package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// Proc is a dtk-agent process started by the benchmark.
type Proc struct {
	Name string
	Bin  string
	Args []string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc starts `bin args...` with its output in logDir/name.log.
func StartProc(bin, logDir, name string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Bin: bin, Args: args, Log: filepath.Join(logDir, name+".log")}
	return p, p.Start()
}

// Start (re)starts the process with its arguments.
func (p *Proc) Start() error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.Bin, p.Args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.done = make(chan struct{})
	done := p.done
	go func() { p.cmd.Wait(); f.Close(); close(done) }()
	return nil
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Alive says the process has not exited.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(p.PID(), sig) }

// Kill9 kills the process with SIGKILL and waits for it.
func (p *Proc) Kill9() {
	if !p.Alive() {
		return
	}
	syscall.Kill(p.PID(), syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits (SIGKILL after 20 s).
func (p *Proc) Stop() {
	if p.cmd == nil || !p.Alive() {
		return
	}
	syscall.Kill(p.PID(), syscall.SIGCONT)
	syscall.Kill(p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill9()
	}
}

// ProcStats is what /proc says about a process.
type ProcStats struct {
	RSSKiB int64 // VmRSS
	HWMKiB int64 // VmHWM: peak RSS
	// AnonKiB is heap and stacks; FileKiB the pages of the binary (and
	// other files) mapped in.
	AnonKiB, FileKiB int64
	CPU              time.Duration
}

// ReadProcStats reads VmRSS, VmHWM and utime+stime of pid.
func ReadProcStats(pid int) (ProcStats, error) {
	var st ProcStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSSKiB = n
		case "VmHWM":
			st.HWMKiB = n
		case "RssAnon":
			st.AnonKiB = n
		case "RssFile":
			st.FileKiB = n
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) in ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) > 13 {
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		st.CPU = time.Duration(ut+stt) * time.Second / clkTck
	}
	return st, nil
}

// clkTck is USER_HZ, 100 on Linux for every architecture Go supports.
const clkTck = 100

// Status asks the coordinator for GET /v1/status with a short timeout, as
// an operator (over https with the cluster's CA when it is secure). The
// probes of a cluster share one small connection pool.
func (co *Coord) Status(timeout time.Duration) (*api.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", co.c.PKI.scheme()+"://"+co.HTTP+"/v1/status", nil)
	if co.c.Token != "" {
		req.Header.Set(api.TokenHeader, co.c.Token)
	}
	resp, err := co.c.probe.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var st api.StatusResponse
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitUntil polls cond every step until it holds or timeout passes.
func waitUntil(timeout, step time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(step)
	}
	return nil
}

func osPID() int { return os.Getpid() }
