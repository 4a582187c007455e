package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A step's processes run in their own process group (actions: Setpgid).
// Before the agent waits on one, it records the group in a file of its own
// in the data dir (running/PGID); when the process ends, the record goes.
// An agent killed with SIGKILL (or the OOM killer) leaves its records
// behind, and its successor stops what they name before it runs anything,
// so that a step never runs twice at once.
//
// The records are not fsynced, and need not be: they matter only while
// the processes they name live, and what kills the machine kills them too.
// A write that has returned survives the death of the agent alone (it is
// in the kernel's page cache), which is the crash they are for. Older
// agents kept them in the database (a commit, and two fsyncs, each way, per
// process); those are still read.
const runningDir = "running"

// procRecord is a running step's process group.
type procRecord struct {
	PGID int `json:"pgid"`
	// StartTime is the group leader's start time (clock ticks since boot,
	// /proc/PID/stat field 22): a pid the kernel has given to another
	// process since does not match it.
	StartTime uint64 `json:"start_time"`
	Step      string `json:"step"`
	AgentPID  int    `json:"agent_pid"`
	StartedAt int64  `json:"started_at_ms"`
	// inDB: an older agent's record, in the database's running bucket.
	inDB bool
}

func pidKey(pid int) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(pid))
	return k[:]
}

// stepProcesses records the processes of one step (an actions.ProcessRecorder).
type stepProcesses struct {
	a    *Agent
	step string
}

// Started records the process group led by pid before the runner waits
// on it.
func (p stepProcesses) Started(pid int) error {
	st, err := readProcStat(pid)
	if err != nil {
		return fmt.Errorf("read the start time of process %d: %w", pid, err)
	}
	rec := procRecord{PGID: pid, StartTime: st.start, Step: p.step, AgentPID: os.Getpid(), StartedAt: time.Now().UnixMilli()}
	b, _ := json.Marshal(rec)
	return os.WriteFile(p.a.store.runningPath(pid), b, 0o600)
}

// Ended forgets the process group led by pid: its leader has exited.
func (p stepProcesses) Ended(pid int) {
	if err := os.Remove(p.a.store.runningPath(pid)); err != nil {
		p.a.log.Error("forget a finished step's process group", "step", p.step, "pgid", pid, "err", err)
	}
}

func (s *store) runningPath(pgid int) string {
	return filepath.Join(s.dir, runningDir, strconv.Itoa(pgid))
}

// leftovers lists the process groups recorded by a previous agent. A record
// that does not parse (a power cut during its write) is removed.
func (s *store) leftovers() ([]procRecord, error) {
	var out []procRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRunning).ForEach(func(k, v []byte) error {
			var r procRecord
			if json.Unmarshal(v, &r) == nil && r.PGID > 1 {
				r.inDB = true
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, runningDir))
	if err != nil {
		return out, err
	}
	for _, e := range ents {
		p := filepath.Join(s.dir, runningDir, e.Name())
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // ended meanwhile
		}
		if err != nil {
			return out, err
		}
		var r procRecord
		if json.Unmarshal(b, &r) != nil || r.PGID <= 1 || strconv.Itoa(r.PGID) != e.Name() {
			s.log.Warn("removing an unreadable record of a step's process group", "file", p)
			os.Remove(p)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *store) forgetRunning(rec procRecord) error {
	if rec.inDB {
		return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRunning).Delete(pidKey(rec.PGID)) })
	}
	if err := os.Remove(s.runningPath(rec.PGID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// leftoverGrace is how long a leftover process group has between SIGTERM
// and SIGKILL; leftoverKillWait how long the agent then waits for it to go
// before it gives up (a process stuck in the kernel) and carries on.
const (
	defaultLeftoverGrace = 10 * time.Second
	leftoverKillWait     = time.Minute
)

// stopLeftovers stops the process groups a previous agent left running:
// SIGTERM, SIGKILL after the grace period, and waits until they are gone.
// It runs before the agent runs anything.
func (a *Agent) stopLeftovers(ctx context.Context) {
	recs, err := a.store.leftovers()
	if err != nil {
		a.log.Error("read the process groups of a previous agent", "err", err)
		return
	}
	for _, rec := range recs {
		log := a.log.With("step", rec.Step, "pgid", rec.PGID, "previous_agent_pid", rec.AgentPID)
		if !leftoverAlive(rec) {
			log.Info("the previous agent's step process group is gone")
		} else {
			log.Warn("a step of the previous agent is still running: stopping its process group before running anything", "grace", a.leftoverGrace)
			if err := stopGroup(ctx, rec.PGID, a.leftoverGrace); err != nil {
				log.Error("the previous agent's step process group did not stop; carrying on", "err", err)
			} else {
				log.Info("stopped the previous agent's step process group")
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := a.store.forgetRunning(rec); err != nil {
			log.Error("forget a stopped process group", "err", err)
		}
	}
}

// leftoverAlive says whether the group of rec still has a live process
// that is ours: its leader with the recorded start time, or, the leader
// gone, members of the group (the kernel does not reuse a pid while a
// process group of that ID exists).
func leftoverAlive(rec procRecord) bool {
	if st, err := readProcStat(rec.PGID); err == nil && !st.dead() {
		if st.start != rec.StartTime {
			return false // the pid belongs to another process now
		}
		return true
	}
	return groupAlive(rec.PGID)
}

// stopGroup sends SIGTERM to the group, SIGKILL after grace, and waits
// until no live process is left in it.
func stopGroup(ctx context.Context, pgid int, grace time.Duration) error {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	if waitGroupGone(ctx, pgid, grace) {
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	if waitGroupGone(ctx, pgid, leftoverKillWait) {
		return nil
	}
	return fmt.Errorf("still alive %s after SIGKILL", leftoverKillWait)
}

func waitGroupGone(ctx context.Context, pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// procStat is what the agent reads from /proc/PID/stat.
type procStat struct {
	state byte   // field 3
	pgrp  int    // field 5
	start uint64 // field 22
}

// dead: a zombie (waiting for its parent to reap it) or exiting.
func (s procStat) dead() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

// readProcStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself: the fields
// after it start after the last ')'. Three fields of a format the kernel
// documents (proc(5)) do not justify a dependency.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, errors.New("malformed /proc stat")
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// groupAlive says whether a live (not zombie) process is in group pgid.
// It reads /proc; where it cannot, it asks the kernel with signal 0, which
// also counts zombies.
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		err := syscall.Kill(-pgid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.pgrp == pgid && !st.dead() {
			return true
		}
	}
	return false
}
