package e2e

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/bench"
)

// peakRSS is the peak resident set size (VmHWM) of process pid, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := bench.ReadProcStats(pid)
	if err != nil || st.HWMKiB == 0 {
		t.Skipf("no VmHWM for pid %d: %v", pid, err)
	}
	return st.HWMKiB << 10
}

// limitModule writes a module folder holding main.hcl with src after the
// module block, and any extra files.
func limitModule(t *testing.T, name, version, src string, files map[string]int64) string {
	t.Helper()
	dir := t.TempDir()
	head := fmt.Sprintf("module {\n  name    = %q\n  version = %q\n}\n\n", name, version)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(head+src), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, size := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		// Random-looking content, so that gzip does not shrink it.
		w := bufio.NewWriter(f)
		x := uint32(2463534242)
		for i := int64(0); i < size; i++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			w.WriteByte(byte(x))
		}
		w.Flush()
		f.Close()
	}
	return dir
}

// writeGzipBomb streams, to a file, a valid module archive whose asset
// unpacks to size zero bytes: about size/1000 bytes of gzip. Neither the
// archive nor its content is ever whole in memory.
func writeGzipBomb(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bomb.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	src := []byte("module {\n  name    = \"bomb\"\n  version = \"1.0.0\"\n}\n")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tw.WriteHeader(&tar.Header{Name: "main.hcl", Mode: 0o644, Size: int64(len(src)), Typeflag: tar.TypeReg}))
	_, err = tw.Write(src)
	must(err)
	must(tw.WriteHeader(&tar.Header{Name: "assets/zero.bin", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}))
	zeros := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(zeros)) {
		_, err := tw.Write(zeros[:min(left, int64(len(zeros)))])
		must(err)
	}
	must(tw.Close())
	must(gz.Close())
	return p
}

// zeroReader is n zero bytes, made as they are read.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// rawPush posts body (of a declared length, or chunked when size < 0) to
// POST /v1/modules and returns the status and JSON error.
func rawPush(t *testing.T, addr string, body io.Reader, size int64) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "https://"+addr+"/v1/modules", body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/gzip")
	c := *opClient
	c.Timeout = 2 * time.Minute
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A coordinator with the default limits refuses each attack on its memory
// with a 4xx naming the limit: nesting bombs ((, [ and upper( 100,000 deep
// in a template's attribute), a gzip bomb (1 MiB unpacking to 1 GiB), a
// declared 300 MiB push, a 100,000-byte label and a 5 MiB JSON body. It
// keeps serving, and its peak RSS stays under 200 MB.
func TestE2E_Limits_AttacksRefusedWithinMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const ip = "127.0.0.210"
	coord := startAgent(t, "lim", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "lim"), "--serf-addr", ip+":7946")
	addr := ip + ":7070"
	waitLeader(t, addr)
	pid := coord.cmd.Process.Pid
	idle := peakRSS(t, pid)
	t.Logf("coordinator peak RSS before the attacks: %d MiB", idle>>20)

	// (a) Nesting bombs, pushed with dtkctl: exit 2, the message names
	// the limit. 100,000 upper( take 700 KB, more than a .hcl file may
	// hold; 35,000 of them fit and meet the nesting limit.
	const n = 100000
	for name, c := range map[string]struct{ expr, key string }{
		"parens":             {strings.Repeat("(", n) + "1" + strings.Repeat(")", n), "limits.nesting_depth"},
		"brackets":           {strings.Repeat("[", n) + strings.Repeat("]", n), "limits.nesting_depth"},
		"calls":              {strings.Repeat("upper(", n) + `"a"` + strings.Repeat(")", n), "limits.hcl_file_bytes"},
		"calls, 35,000 deep": {strings.Repeat("upper(", 35000) + `"a"` + strings.Repeat(")", 35000), "limits.nesting_depth"},
	} {
		dir := limitModule(t, "nest", "1.0.0", "template \"app\" {\n  input \"x\" {\n    type    = string\n    default = "+c.expr+"\n  }\n}\n", nil)
		_, errOut, code := ctl(t, addr, "module", "push", dir)
		want := map[string]string{"limits.nesting_depth": "expressions nest deeper than 64 levels (limits.nesting_depth)",
			"limits.hcl_file_bytes": "main.hcl is larger than 262144 bytes (limits.hcl_file_bytes)"}[c.key]
		if code != 2 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "raise "+c.key+" in the coordinator config") {
			t.Errorf("nesting bomb %s: exit %d, want 2 and %q\n%.2000s", name, code, want, errOut)
		}
	}

	t.Logf("peak RSS after the nesting bombs: %d MiB", peakRSS(t, pid)>>20)

	// (b) A gzip bomb in an otherwise valid module.
	bomb := writeGzipBomb(t, 1<<30)
	fi, _ := os.Stat(bomb)
	t.Logf("gzip bomb: %d KiB unpacking to 1 GiB", fi.Size()>>10)
	f, err := os.Open(bomb)
	if err != nil {
		t.Fatal(err)
	}
	code, msg := rawPush(t, addr, f, fi.Size())
	f.Close()
	expectRefused(t, "gzip bomb", code, msg, 413, "module unpacks to more than 256 MiB (limits.module_unpacked_bytes); raise it in the coordinator config")

	t.Logf("peak RSS after the gzip bomb: %d MiB", peakRSS(t, pid)>>20)

	// A push body declared larger than the packed limit is refused before
	// it is read (it used to be read up to 2 GiB).
	start := time.Now()
	code, msg = rawPush(t, addr, &zeroReader{n: 300 << 20}, 300<<20)
	expectRefused(t, "300 MiB push", code, msg, 413, "module archive is larger than 256 MiB (limits.module_packed_bytes); raise it in the coordinator config")
	t.Logf("300 MiB push refused in %v", time.Since(start))

	// (c) A 100,000-byte label, as the node itself registering.
	cert, key := certFor(t, "node", "n1", ip)
	node := certClient(t, pki.ca, cert, key)
	code, msg = call(t, node, "PUT", "https://"+addr+"/v1/nodes/n1", `{"name": "n1", "labels": {"role": "`+strings.Repeat("x", 100000)+`"}}`)
	expectRefused(t, "long label", code, msg, 400, `label "role": the value is 100000 bytes, longer than 255 (limits.label_value_bytes); raise it in the coordinator config`)

	// (d) An oversized JSON body.
	code, msg = call(t, opClient, "POST", "https://"+addr+"/v1/services", `{"name": "s", "inputs": {"x": "`+strings.Repeat("x", 5<<20)+`"}}`)
	expectRefused(t, "5 MiB JSON body", code, msg, 413, "request body is larger than 4 MiB (limits.json_body_bytes); raise it in the coordinator config")

	// Still up and serving: a real module goes through.
	select {
	case <-coord.done:
		t.Fatalf("the coordinator exited:\n%s", coord.Output())
	default:
	}
	dir := limitModule(t, "fine", "1.0.0", "", map[string]int64{"assets/data.bin": 1 << 20})
	mustCtl(t, addr, "module", "push", dir)
	if out := mustCtl(t, addr, "module", "list"); !strings.Contains(out, "fine") {
		t.Errorf("module list after the attacks:\n%s", out)
	}
	peak := peakRSS(t, pid)
	t.Logf("coordinator peak RSS after the attacks: %d MiB", peak>>20)
	if peak > 200<<20 {
		t.Errorf("coordinator peak RSS %d MiB, want under 200 MB", peak>>20)
	}
	if strings.Contains(coord.Output(), "panic") || strings.Contains(coord.Output(), "fatal error") {
		t.Errorf("coordinator output:\n%s", coord.Output())
	}
}

// Raising a limit in the configuration file (and restarting) lets through
// a module the lower limit refused.
func TestE2E_Limits_RaisedInConfigLetsModuleThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const ip = "127.0.0.211"
	addr := ip + ":7070"
	conf := filepath.Join(root, "agent.hcl")
	start := func(limitsBlock string) *proc {
		if err := os.WriteFile(conf, []byte(limitsBlock), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startAgent(t, "big", "--config", conf, "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "big"), "--serf-addr", ip+":7946")
		waitLeader(t, addr)
		return p
	}
	// 12 MiB of incompressible assets: over 8 MiB packed and unpacked.
	dir := limitModule(t, "big", "1.0.0", "", map[string]int64{"assets/a.bin": 6 << 20, "assets/b.bin": 6 << 20})

	p := start("limits {\n  module_packed_bytes   = \"8MiB\"\n  module_unpacked_bytes = \"8MiB\"\n}\n")
	_, errOut, code := ctl(t, addr, "module", "push", dir)
	if code != 2 || !strings.Contains(errOut, "module archive is larger than 8 MiB (limits.module_packed_bytes); raise it in the coordinator config") {
		t.Fatalf("push over the packed limit: exit %d\n%s", code, errOut)
	}
	p.stop(syscall.SIGTERM)

	p = start("limits {\n  module_packed_bytes   = \"64MiB\"\n  module_unpacked_bytes = \"8MiB\"\n}\n")
	_, errOut, code = ctl(t, addr, "module", "push", dir)
	if code != 2 || !strings.Contains(errOut, "module unpacks to more than 8 MiB (limits.module_unpacked_bytes); raise it in the coordinator config") {
		t.Fatalf("push over the unpacked limit: exit %d\n%s", code, errOut)
	}
	p.stop(syscall.SIGTERM)

	start("limits {\n  module_packed_bytes   = \"64MiB\"\n  module_unpacked_bytes = \"64MiB\"\n}\n")
	if out := mustCtl(t, addr, "module", "push", dir); !strings.Contains(out, "pushed big@1.0.0") {
		t.Errorf("push with the raised limits: %s", out)
	}
}
