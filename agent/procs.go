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
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A step's processes run in their own process group (actions: Setpgid).
// Before the agent waits on one, it records the group in its process log
// (running.log in the data dir); when the process ends, it logs that too.
// An agent killed with SIGKILL (or the OOM killer) leaves its records
// behind, and its successor stops what they name before it runs anything,
// so that a step never runs twice at once.
//
// The log is one line appended per event and emptied whenever no process
// is left, and it is not fsynced, nor need it be: a record matters only
// while the process it names lives, and what kills the machine kills the
// process too. A write that has returned survives the death of the agent
// alone (it is in the kernel's page cache), which is the crash it is for.
// Older agents kept the records in the database (a commit, and two fsyncs,
// each way, per process); those are still read.
const procLogFile = "running.log"

// procLog is the process log and the groups it names.
type procLog struct {
	mu   sync.Mutex
	f    *os.File // opened for appending
	live map[int]procRecord
	size int64
}

// procEvent is a line of the process log: a group started (its record) or
// ended.
type procEvent struct {
	procRecord
	Ended bool `json:"ended,omitempty"`
}

// compactProcLog is the size beyond which the log is rewritten with the
// live records alone (it is emptied anyway whenever none is left).
const compactProcLog = 64 << 10

// openProcLog opens the process log and reads the groups it names. A line
// that does not parse (a power cut while it was written) is skipped.
func openProcLog(dir string) (*procLog, error) {
	path := filepath.Join(dir, procLogFile)
	live, b, err := readProcLog(path)
	if err != nil {
		return nil, err
	}
	l := &procLog{live: live}
	if l.f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		err = l.f.Chmod(0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("open the process log: %w", err)
	}
	l.size = int64(len(b))
	if err := l.compact(); err != nil {
		l.f.Close()
		return nil, err
	}
	return l, nil
}

// readProcLog reads the groups a process log names, and its bytes.
func readProcLog(path string) (map[int]procRecord, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read the process log: %w", err)
	}
	live := map[int]procRecord{}
	for _, line := range strings.Split(string(b), "\n") {
		var ev procEvent
		if json.Unmarshal([]byte(line), &ev) != nil || ev.PGID <= 1 {
			continue
		}
		if ev.Ended {
			delete(live, ev.PGID)
		} else {
			live[ev.PGID] = ev.procRecord
		}
	}
	return live, b, nil
}

func (l *procLog) close() error { return l.f.Close() }

func (l *procLog) write(ev procEvent) error {
	b, _ := json.Marshal(ev)
	n, err := l.f.Write(append(b, '\n'))
	l.size += int64(n)
	return err
}

// started records a group.
func (l *procLog) started(rec procRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(procEvent{procRecord: rec}); err != nil {
		return fmt.Errorf("write the process log: %w", err)
	}
	l.live[rec.PGID] = rec
	return nil
}

// ended forgets a group.
func (l *procLog) ended(pgid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.live[pgid]; !ok {
		return nil
	}
	delete(l.live, pgid)
	if len(l.live) > 0 && l.size < compactProcLog {
		if err := l.write(procEvent{procRecord: procRecord{PGID: pgid}, Ended: true}); err != nil {
			return fmt.Errorf("write the process log: %w", err)
		}
		return nil
	}
	return l.compact()
}

// compact rewrites the log with the live records alone: nothing when none
// is left (the usual case: truncated). Otherwise the new log is written
// beside it and renamed over it, so that a crash leaves one or the other.
// Called with mu held, or before the log is shared.
func (l *procLog) compact() error {
	if len(l.live) == 0 {
		if l.size == 0 {
			return nil
		}
		if err := l.f.Truncate(0); err != nil {
			return fmt.Errorf("empty the process log: %w", err)
		}
		l.size = 0
		return nil
	}
	if l.size < compactProcLog {
		return nil
	}
	var buf []byte
	for _, rec := range l.live {
		b, _ := json.Marshal(procEvent{procRecord: rec})
		buf = append(append(buf, b...), '\n')
	}
	path := l.f.Name()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return fmt.Errorf("compact the process log: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact the process log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("compact the process log: %w", err)
	}
	l.f.Close()
	l.f, l.size = f, int64(len(buf))
	return nil
}

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
	inDB bool `json:"-"`
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
	return p.a.store.procs.started(procRecord{PGID: pid, StartTime: st.start, Step: p.step, AgentPID: os.Getpid(), StartedAt: time.Now().UnixMilli()})
}

// Ended forgets the process group led by pid: its leader has exited.
func (p stepProcesses) Ended(pid int) {
	if err := p.a.store.procs.ended(pid); err != nil {
		p.a.log.Error("forget a finished step's process group", "step", p.step, "pgid", pid, "err", err)
	}
}

// leftovers lists the process groups on record: at start, those a previous
// agent left.
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
	s.procs.mu.Lock()
	for _, r := range s.procs.live {
		out = append(out, r)
	}
	s.procs.mu.Unlock()
	return out, nil
}

func (s *store) forgetRunning(rec procRecord) error {
	if rec.inDB {
		return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRunning).Delete(pidKey(rec.PGID)) })
	}
	return s.procs.ended(rec.PGID)
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
