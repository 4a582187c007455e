package agent

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dtkhq/dtk/internal/api"
)

// startGroup starts script in its own process group, as the runners do,
// and reaps it in the background.
func startGroup(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd
}

func newIdleAgent(t *testing.T, data string) *Agent {
	t.Helper()
	a, err := New(Config{Name: "n1", DataDir: data, Client: api.NewClient("http://127.0.0.1:1"), LeftoverGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	return a
}

// An agent that died mid-step (its record of the step's process group left
// behind) is followed by one that stops that group, SIGKILL included for a
// group that ignores SIGTERM, before it runs anything.
func TestAgent_StopLeftovers_KillsThePredecessorsProcessGroup(t *testing.T) {
	data := t.TempDir()
	dead := newIdleAgent(t, data)
	// One child ignores SIGTERM (ignored signals are inherited).
	cmd := startGroup(t, `trap '' TERM; sleep 300 & sleep 300 & wait`)
	pgid := cmd.Process.Pid
	if err := (stepProcesses{a: dead, step: "s/n/i/create"}).Started(pgid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group's children", func() bool { return groupAlive(pgid) })
	dead.Shutdown() // as if killed: Ended was never called

	a := newIdleAgent(t, data)
	recs, _ := a.store.leftovers()
	if len(recs) != 1 || recs[0].PGID != pgid || recs[0].Step != "s/n/i/create" {
		t.Fatalf("leftovers = %+v", recs)
	}
	a.Start(context.Background())
	select {
	case <-a.cleared:
	case <-time.After(30 * time.Second):
		t.Fatal("leftovers not cleared")
	}
	if groupAlive(pgid) {
		t.Fatal("the predecessor's process group is still alive")
	}
	if recs, _ := a.store.leftovers(); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
}

// An older agent kept its records in the database: they are still found,
// stopped and forgotten.
func TestAgent_StopLeftovers_OlderAgentsRecordInTheDatabase(t *testing.T) {
	data := t.TempDir()
	dead := newIdleAgent(t, data)
	cmd := startGroup(t, `sleep 300`)
	pgid := cmd.Process.Pid
	st, err := readProcStat(pgid)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(procRecord{PGID: pgid, StartTime: st.start, Step: "s/n/i/create", AgentPID: 1})
	if err := dead.store.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRunning).Put(pidKey(pgid), b) }); err != nil {
		t.Fatal(err)
	}
	dead.Shutdown()

	a := newIdleAgent(t, data)
	a.Start(context.Background())
	select {
	case <-a.cleared:
	case <-time.After(30 * time.Second):
		t.Fatal("leftovers not cleared")
	}
	if groupAlive(pgid) {
		t.Fatal("the older agent's process group is still alive")
	}
	if recs, _ := a.store.leftovers(); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
}

// The process log is read line by line: a line cut short (a power cut
// while it was written) is skipped, an ended group is not a leftover, and
// the log is emptied once no group is left.
func TestStore_ProcLog_ReadBackAndEmptied(t *testing.T) {
	data := t.TempDir()
	log := `{"pgid":4242,"start_time":1,"step":"a"}
{"pgid":4243,"start_time":2,"step":"b"}
{"pgid":4242,"ended":true}
{"pgid":4244,"start_ti`
	if err := os.WriteFile(filepath.Join(data, procLogFile), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, data, 0)
	recs, err := s.leftovers()
	if err != nil || len(recs) != 1 || recs[0].PGID != 4243 || recs[0].Step != "b" {
		t.Fatalf("leftovers %+v (%v), want b's group alone", recs, err)
	}
	if err := s.forgetRunning(recs[0]); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(data, procLogFile)); err != nil || fi.Size() != 0 {
		t.Fatalf("the process log is not emptied once no group is left: %v, %v", fi.Size(), err)
	}
	// Compacted when it grows while a group stays.
	s.procs.started(procRecord{PGID: 10, Step: "long"})
	for i := range 2000 {
		s.procs.started(procRecord{PGID: 100 + i, Step: "short"})
		s.procs.ended(100 + i)
	}
	if fi, _ := os.Stat(filepath.Join(data, procLogFile)); fi.Size() > compactProcLog+1000 {
		t.Fatalf("the process log grew to %d bytes", fi.Size())
	}
	s.close()
	s2 := openTestStore(t, data, 0)
	if recs, _ := s2.leftovers(); len(recs) != 1 || recs[0].PGID != 10 {
		t.Fatalf("after compaction: %+v", recs)
	}
}

// A recorded pid the kernel has given to another process (its start time
// differs) is not killed.
func TestAgent_StopLeftovers_SparesAReusedPid(t *testing.T) {
	data := t.TempDir()
	dead := newIdleAgent(t, data)
	cmd := startGroup(t, `sleep 300`)
	pgid := cmd.Process.Pid
	if err := (stepProcesses{a: dead, step: "s/n/i/create"}).Started(pgid); err != nil {
		t.Fatal(err)
	}
	recs, _ := dead.store.leftovers()
	recs[0].StartTime++ // another process's start
	if leftoverAlive(recs[0]) {
		t.Fatal("a process with another start time counts as the step's")
	}
	recs[0].StartTime--
	if !leftoverAlive(recs[0]) {
		t.Fatal("the step's own process does not count as alive")
	}
}

func TestParseProcStat_NameWithSpacesAndParens(t *testing.T) {
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.pgrp != 4242 || st.start != 987654 {
		t.Fatalf("parsed %+v", st)
	}
	if _, err := parseProcStat("4242 (x) S 1"); err == nil {
		t.Fatal("a short line parsed")
	}
}

// A running step's process group is on record while it runs, and only then.
func TestAgent_RunStep_RecordsItsProcessGroupWhileRunning(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`echo "run $msg" >> "$DTK_DATA_DIR/runs"; while [ ! -f "$DTK_DATA_DIR/go" ]; do sleep 0.05; done`), 0o755)
	f, srv := newFake(t, dir)
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	f.publish(f.step("one", "a", 1))
	var rec procRecord
	waitFor(t, "the running step's record", func() bool {
		recs, _ := a.store.leftovers()
		if len(recs) == 1 {
			rec = recs[0]
		}
		return len(recs) == 1
	})
	if st, err := readProcStat(rec.PGID); err != nil || st.start != rec.StartTime || st.pgrp != rec.PGID || rec.Step != "s/n/one/create" {
		t.Fatalf("record %+v does not match the process (%+v, %v)", rec, st, err)
	}
	os.WriteFile(filepath.Join(data, "go"), nil, 0o644)
	waitFor(t, "the step's report", func() bool { return len(f.final("s/n/one/create")) == 1 })
	if recs, _ := a.store.leftovers(); len(recs) != 0 {
		t.Fatalf("records after the step ended: %+v", recs)
	}
}
