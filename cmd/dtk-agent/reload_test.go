package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
)

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(out.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in output:\n%s", want, out.String())
}

// agentProc is a dtk-agent process started by a test, its output
// collected.
type agentProc struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
}

// startAgent starts dtk-agent with args; the test's cleanup kills it if it
// still runs.
func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{cmd: exec.Command(agentBin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() || testing.Verbose() {
			t.Logf("dtk-agent output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *agentProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// stop sends SIGTERM and checks for a graceful exit 0.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.done:
		if p.waitErr != nil {
			t.Errorf("exit after SIGTERM: %v", p.waitErr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no exit 40 s after SIGTERM")
	}
	if !strings.Contains(p.out.String(), "shutting down") {
		t.Errorf("no graceful shutdown")
	}
}

// A running coordinator re-reads its file on SIGHUP: a valid file changes
// the log level at once and names the fields that need a restart; an
// invalid one is reported with positions and changes nothing.
func TestRun_SIGHUP_ReloadsOrKeepsConfiguration(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, "hup", net.IPv4(127, 0, 86, 1))
	base := `name = "hup"
data_dir = "` + dir + `/data"
coordinator = true
serf_addr = "127.0.86.1:7946"
http_addr = "127.0.86.1:0"
raft_addr = "127.0.86.1:0"
labels = { role = "web" }
` + pki.hcl()
	path := writePrivate(t, "agent.hcl", base+"log_level = \"info\"\n")
	p := startAgent(t, "run", "--config", path)
	out := p.out
	hup := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		p.signal(t, syscall.SIGHUP)
	}
	waitOutput(t, out, "dtk-agent running")
	if s := out.String(); strings.Contains(s, "INSECURE") {
		t.Errorf("the secure coordinator says it is insecure:\n%s", s)
	}

	// Quieter: info lines stop at once.
	hup(base + "log_level = \"warn\"\n")
	waitOutput(t, out, `msg="log level changed" component=reload level=warn`)

	// Invalid: the errors are logged with positions, nothing changes.
	hup(base + "log_level = \"debug\"\npoll_wait = \"soon\"\n")
	waitOutput(t, out, "configuration not reloaded: keeping the running one")
	line := strings.Count(base, "\n") + 2
	if want := fmt.Sprintf(`%s:%d:13: poll_wait: \"soon\" is not a duration`, path, line); !strings.Contains(out.String(), want) {
		t.Errorf("no positioned error %s:\n%s", want, out.String())
	}
	if s := out.String(); strings.Contains(s, `msg="configuration reloaded"`) || strings.Contains(s, "level=DEBUG") {
		t.Errorf("info line at warn level, or debug from an invalid file:\n%s", s)
	}

	// Valid again, with a field that needs a restart.
	next := strings.NewReplacer(`127.0.86.1:7946`, `127.0.86.2:7946`, `role = "web"`, `role = "db"`).Replace(base)
	hup(next + "log_level = \"debug\"\n")
	waitOutput(t, out, `msg="changed, takes effect after a restart" component=reload field=serf_addr`)
	waitOutput(t, out, `msg="log level changed" component=reload level=debug`)
	waitOutput(t, out, `msg="configuration reloaded"`)
	// Labels change at run time once the agent can take them
	// (agent.SetLabels); until then the reload says they need a restart.
	if s := out.String(); !strings.Contains(s, `msg="labels changed"`) && !strings.Contains(s, `msg="not applied" component=reload field=labels`) {
		t.Errorf("nothing said about the labels:\n%s", s)
	}
	p.stop(t)
}

// servedSerial is the serial of the certificate a TLS client verifying
// against the cluster CA sees at addr.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return tlsutil.SerialHex(c.ConnectionState().PeerCertificates[0]), nil
}

// SIGHUP re-reads the certificate files: a new server certificate is
// served from then on, while unreadable files leave the running one in
// place and say so.
func TestRun_SIGHUP_ReloadsTLSMaterial(t *testing.T) {
	pki := newPKI(t, "tlshup", net.IPv4(127, 0, 86, 3))
	first, err := tlsutil.NewStore(pki.CAFile, pki.CertFile, pki.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := tlsutil.SerialHex(first.Leaf())
	path := writePrivate(t, "agent.hcl", `name = "tlshup"
data_dir = "`+t.TempDir()+`/data"
coordinator = true
serf_addr = "127.0.86.3:7946"
http_addr = "127.0.86.3:0"
raft_addr = "127.0.86.3:0"
`+pki.hcl())
	p := startAgent(t, "run", "--config", path)
	waitOutput(t, p.out, "dtk-agent running")
	m := regexp.MustCompile(`msg="coordinator started" .*\bhttp=(\S+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no API address in the output:\n%s", p.out.String())
	}
	api := m[1]
	client := pki.clientStore(t).ClientConfig()
	if got, err := servedSerial(t, api, client); err != nil || got != oldSerial {
		t.Fatalf("before the reload: serial %s, %v; want %s", got, err, oldSerial)
	}

	// A new certificate for the same name, then SIGHUP.
	newSerial := tlsutil.SerialHex(pki.reissue(t))
	if newSerial == oldSerial {
		t.Fatal("the new certificate has the old serial")
	}
	p.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := servedSerial(t, api, client)
		if err == nil && got == newSerial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after SIGHUP the coordinator serves serial %s (%v), want the new %s", got, err, newSerial)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitOutput(t, p.out, `msg="TLS material reloaded"`)

	// Garbage in the certificate file: the reload fails, loudly, and the
	// certificate in use stays.
	if err := os.WriteFile(pki.CertFile, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	waitOutput(t, p.out, `level=ERROR msg="TLS material not reloaded: keeping the running one" component=reload err=`)
	if !strings.Contains(p.out.String(), pki.CertFile) {
		t.Errorf("the error does not name %s", pki.CertFile)
	}
	// The error is logged after the failed reload: what is served now is
	// what is served from here on.
	if got, err := servedSerial(t, api, client); err != nil || got != newSerial {
		t.Errorf("after a failed reload: serial %s, %v; want %s still", got, err, newSerial)
	}
	p.stop(t)
}
