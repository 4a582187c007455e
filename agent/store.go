package agent

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/plan"
)

// The agent's database (bbolt, one file in the data dir) holds what changes
// often and must survive a crash without rewriting the state file: the
// agent's incarnation, the outbox of unacknowledged reports and the step
// records (records.go). A write (a step's final report with its record, in
// the main) is one entry: appended to the journal (journal.go) with one
// fdatasync, and applied to the database with the entries before it by the
// next checkpoint, one bbolt commit for many steps.
const (
	storeFile = "agent.db"
	// DefaultOutboxBytes bounds the outbox when the configuration does not.
	DefaultOutboxBytes int64 = 64 << 20
	reportLabel              = "agent-report"
)

var (
	bucketMeta    = []byte("meta")
	bucketOutbox  = []byte("outbox")
	bucketRunning = []byte("running") // older agents' process group records (procs.go)

	keyIncarnation = []byte("incarnation")
	keyNextSeq     = []byte("next_seq")
	keyMigrated    = []byte("state_queue_migrated")
)

// errStoreLocked: another agent holds the data dir.
var errStoreLocked = errors.New("the agent database is locked by another process: is another dtk-agent running on this data dir?")

// store is the agent's bbolt database.
type store struct {
	db  *bolt.DB
	key []byte // seals outbox values
	// incarnation is a random ID made when the database was created: a
	// data dir that was wiped gives a new one, and the coordinators keep
	// report sequences per incarnation.
	incarnation string
	node        string
	dir         string // the data dir
	log         *slog.Logger
	// procs records the process groups of running steps (procs.go).
	procs *procLog

	mu       sync.Mutex // guards the fields below and every write
	maxBytes int64
	// count and bytes: the reports waiting in the outbox and the journal
	// and their sealed bytes (acknowledged ones left out).
	count int
	bytes int64
	next  uint64 // sequence of the next report
	// reserved is the sequence stored last (keyNextSeq in the database or
	// an entry's Next in the journal): every sequence below it is durably
	// used, so that a restarted agent never numbers a report with a
	// sequence a coordinator may have seen. A report is sent only once its
	// sequence is below it. stored is keyNextSeq in the database.
	reserved, stored uint64
	// volatile holds the reports kept in memory only: "running" reports
	// (a step started, its progress). Their sequences come from next like
	// the others'; a crash loses them, which costs the coordinators a
	// status they would have overwritten anyway.
	volatile      []pending
	volatileBytes int64
	// acked holds delivered reports still in the outbox or the journal
	// (sequence → sealed size): the next checkpoint deletes them rather
	// than a commit of their own. A crash before that sends them again,
	// and the coordinators drop the resends.
	acked map[uint64]int64
	// journal (nil: every write is a bbolt commit) holds the entries
	// written since the last checkpoint, also kept here until then:
	// jEntries to apply, jReports the reports they queued (for peek).
	journal  *journal
	jEntries []*entry
	jReports []pending
}

// openStore opens (or creates) the database in dir. It fails at once when
// another process holds it.
func openStore(dir, node string, maxBytes int64, log *slog.Logger) (*store, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultOutboxBytes
	}
	key, err := stateKey(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, storeFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, errStoreLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open agent database %s (move it aside to start afresh, as a new incarnation): %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("agent database: %w", err)
	}
	procs, err := openProcLog(dir)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &store{db: db, key: key, node: node, dir: dir, log: log, maxBytes: maxBytes, acked: map[uint64]int64{}, procs: procs}
	var epoch uint64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketOutbox, bucketRunning, bucketSteps, bucketFailed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyIncarnation); v != nil {
			s.incarnation = string(v)
		} else {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			s.incarnation = hex.EncodeToString(b[:])
			if err := meta.Put(keyIncarnation, []byte(s.incarnation)); err != nil {
				return err
			}
		}
		s.next = 1
		if v := meta.Get(keyNextSeq); len(v) == 8 {
			s.next = binary.BigEndian.Uint64(v)
		}
		s.reserved, s.stored = s.next, s.next
		if v := meta.Get(keyJournalEpoch); len(v) == 8 {
			epoch = binary.BigEndian.Uint64(v)
		}
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			s.bytes += int64(len(v))
			s.count++
			return nil
		})
	})
	if err != nil {
		db.Close()
		procs.close()
		return nil, fmt.Errorf("agent database %s: %w", path, err)
	}
	if err := s.openJournal(epoch); err != nil {
		db.Close()
		procs.close()
		return nil, err
	}
	return s, nil
}

// privateDir makes a folder only the agent may enter, also when it exists
// with a wider mode.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// close applies the journal to the database and closes both.
func (s *store) close() error {
	err := s.checkpoint()
	if s.journal != nil {
		err = errors.Join(err, s.journal.f.Close())
	}
	return errors.Join(err, s.procs.close(), s.db.Close())
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// reportID names a report of this incarnation: "node:incarnation:seq".
func (s *store) reportID(seq uint64) string {
	return s.node + ":" + s.incarnation + ":" + strconv.FormatUint(seq, 10)
}

func (s *store) seal(r plan.Report) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	v, err := secret.Seal(s.key, b, reportLabel)
	if err != nil {
		return nil, fmt.Errorf("seal report: %w", err)
	}
	return []byte(v), nil
}

// append adds reports to the outbox in one write, giving each its ID.
// When the outbox would hold more than its byte bound, the oldest reports
// are dropped (logged): the agent never blocks on a full outbox.
func (s *store) append(reports ...plan.Report) error {
	if len(reports) == 0 {
		return nil
	}
	return s.write(reports, nil)
}

// write queues reports and a change of the step records (nil: none) as
// one entry: both are on disk when it returns, or neither is. It numbers
// the reports and stores the next sequence, which makes the volatile
// reports numbered so far sendable. The entry goes to the journal (one
// fdatasync); to the database, with everything the journal holds, when
// the journal cannot take it (full, or broken) or the outbox is over its
// bound (the database drops the oldest reports).
func (s *store) write(reports []plan.Report, change *recordChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(reports) == 0 && change == nil && s.next == s.reserved {
		return nil
	}
	e, queued, err := s.entry(reports, change)
	if err != nil {
		return fmt.Errorf("queue report: %w", err)
	}
	var size int64
	for _, p := range queued {
		size += int64(p.sealed)
	}
	if s.journal != nil && s.bytes+size <= s.maxBytes {
		err := s.journal.append(e)
		if err == nil {
			s.next, s.reserved = e.Next, e.Next
			s.jEntries = append(s.jEntries, e)
			s.jReports = append(s.jReports, queued...)
			s.count += len(queued)
			s.bytes += size
			return nil
		}
		if !errors.Is(err, errJournalFull) {
			s.log.Warn("write the journal; committing to the database instead", "err", err)
		}
	}
	return s.commit(e)
}

// entry numbers reports from next and seals them and the records of
// change, as an entry; queued are the reports as peek returns them.
func (s *store) entry(reports []plan.Report, change *recordChange) (*entry, []pending, error) {
	next := s.next
	e := &entry{}
	var queued []pending
	for _, r := range reports {
		r.ID, r.Node = s.reportID(next), s.node
		b, err := json.Marshal(r)
		if err != nil {
			return nil, nil, err
		}
		v, err := secret.Seal(s.key, b, reportLabel)
		if err != nil {
			return nil, nil, fmt.Errorf("seal report: %w", err)
		}
		e.Reports = append(e.Reports, entryReport{Seq: next, Sealed: v})
		queued = append(queued, pending{seq: next, report: r, size: len(b), sealed: len(v)})
		next++
	}
	e.Next = next
	if change != nil {
		if err := change.seal(e, s.key); err != nil {
			return nil, nil, err
		}
	}
	return e, queued, nil
}

// checkpoint applies the journal's entries to the database and deletes the
// acknowledged reports, in one commit, and starts the journal afresh.
func (s *store) checkpoint() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jEntries) == 0 && len(s.acked) == 0 {
		return nil
	}
	if err := s.commit(nil); err != nil {
		return fmt.Errorf("apply the journal to the agent database: %w", err)
	}
	return nil
}

// checkpointPending says whether the journal holds entries, or reports
// were acknowledged, since the last checkpoint.
func (s *store) checkpointPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jEntries) > 0 || len(s.acked) > 0
}

// commit applies the journal's entries, then e (nil: none), to the
// database in one transaction, deletes the acknowledged reports, drops
// the oldest reports over the outbox's bound, and moves the journal to a
// new epoch: its entries are in the database now, and would not open
// again. Called with mu held.
func (s *store) commit(e *entry) error {
	entries := s.jEntries
	if e != nil {
		entries = append(slices.Clip(entries), e)
	}
	var dropped []plan.Report
	var droppedBytes int64
	next, count0, size0 := s.next, s.count, s.bytes
	if e != nil {
		next = e.Next
		for _, r := range e.Reports {
			count0++
			size0 += int64(len(r.Sealed))
		}
	}
	var count int
	var size int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		dropped, droppedBytes = nil, 0
		count, size = count0, size0
		for _, e := range entries {
			if err := e.apply(tx); err != nil {
				return err
			}
		}
		out := tx.Bucket(bucketOutbox)
		for seq := range s.acked {
			if err := out.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		// Over the bound: the oldest go first, but never the last one.
		c := out.Cursor()
		for k, v := c.First(); k != nil && size > s.maxBytes && count > 1; k, v = c.First() {
			if r, err := s.open(v); err == nil {
				dropped = append(dropped, r)
			}
			size -= int64(len(v))
			droppedBytes += int64(len(v))
			count--
			if err := c.Delete(); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if next != s.stored {
			if err := meta.Put(keyNextSeq, seqKey(next)); err != nil {
				return err
			}
		}
		if s.journal != nil {
			return meta.Put(keyJournalEpoch, seqKey(s.journal.epoch+1))
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.next, s.reserved, s.stored, s.count, s.bytes = next, next, next, count, size
	clear(s.acked)
	s.jEntries, s.jReports = nil, nil
	if s.journal != nil {
		s.journal.restart()
	}
	if len(dropped) > 0 {
		steps := make([]string, 0, min(len(dropped), 5))
		for _, r := range dropped[:min(len(dropped), 5)] {
			steps = append(steps, r.StepID+" "+r.State)
		}
		s.log.Warn("report outbox full: dropped the oldest reports; look at why no coordinator accepts them (the send errors above)",
			"dropped", len(dropped), "bytes", droppedBytes, "limit", s.maxBytes, "oldest", strings.Join(steps, ", "))
	}
	return nil
}

// Bounds of the volatile reports, which a coordinator that does not answer
// leaves in memory: beyond either, the oldest go.
const (
	maxVolatileReports = 256
	maxVolatileBytes   = 4 << 20
)

// appendVolatile numbers a report and keeps it in memory only, without a
// write: for "running" reports, which a crash may lose. It replaces an
// earlier volatile report of the same step not yet delivered (a running
// report by its progress), so that a coordinator that does not answer
// costs at most one report per step. It is sent once its sequence is
// stored: with the next write, or by reserve.
func (s *store) appendVolatile(r plan.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.ID, r.Node = s.reportID(s.next), s.node
	b, _ := json.Marshal(r)
	p := pending{seq: s.next, report: r, size: len(b)}
	s.next++
	kept := s.volatile[:0]
	for _, v := range s.volatile {
		if v.report.StepID == r.StepID {
			s.volatileBytes -= int64(v.size)
			continue
		}
		kept = append(kept, v)
	}
	s.volatile = append(kept, p)
	s.volatileBytes += int64(p.size)
	for len(s.volatile) > 1 && (len(s.volatile) > maxVolatileReports || s.volatileBytes > maxVolatileBytes) {
		s.volatileBytes -= int64(s.volatile[0].size)
		s.volatile = s.volatile[1:]
	}
}

// unsendable says whether volatile reports wait for their sequence to be
// stored (reserve).
func (s *store) unsendable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.volatile)
	return n > 0 && s.volatile[n-1].seq >= s.reserved
}

// reserve stores the next sequence, so that the volatile reports numbered
// so far may be sent. The sender calls it when they have waited a while
// for a write to do it (a step that runs for long).
func (s *store) reserve() error {
	s.mu.Lock()
	pending := s.next != s.reserved
	s.mu.Unlock()
	if !pending {
		return nil
	}
	return s.write(nil, nil)
}

func (s *store) open(v []byte) (plan.Report, error) {
	var r plan.Report
	b, err := secret.Open(s.key, string(v), reportLabel)
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(b, &r)
	return r, err
}

// pending is a report waiting in the outbox.
type pending struct {
	seq    uint64
	report plan.Report
	size   int // bytes of its JSON
	sealed int // bytes of its sealed value (reports in the journal)
	// shrunk counts how often the report was made smaller after a 413
	// (send.go); the outbox keeps the original.
	shrunk int
}

// peek returns the oldest reports (in the database, the journal and
// memory) in sequence order, at most maxCount of them and (but for the
// first) at most maxBytes of JSON. It returns only reports whose sequence
// is stored (below reserved): those after them wait. A value that no
// longer opens is dropped with an error logged, so that it cannot block
// the outbox.
func (s *store) peek(maxCount, maxBytes int) ([]pending, error) {
	// What was numbered up to now, in one view: every report below the
	// limit is in the database, or in the copies of the journal's and the
	// volatile ones. A checkpoint may move the journal's into the
	// database meanwhile: the database's copy is taken.
	s.mu.Lock()
	limit := s.reserved
	mem := slices.Clone(s.jReports)
	for _, p := range s.volatile {
		if p.seq < limit {
			mem = append(mem, p)
		}
	}
	acked := make(map[uint64]bool, len(s.acked))
	for seq := range s.acked {
		acked[seq] = true
	}
	s.mu.Unlock()
	slices.SortFunc(mem, func(a, b pending) int { return cmp.Compare(a.seq, b.seq) })
	var out []pending
	var bad []uint64
	total := 0
	full := false
	add := func(p pending) {
		if len(out) >= maxCount || (len(out) > 0 && total+p.size > maxBytes) {
			full = true
			return
		}
		total += p.size
		out = append(out, p)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && !full; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq >= limit {
				break
			}
			for len(mem) > 0 && mem[0].seq <= seq && !full {
				if mem[0].seq < seq {
					add(mem[0])
				}
				mem = mem[1:]
			}
			if full || acked[seq] {
				continue
			}
			r, err := s.open(v)
			if err != nil {
				s.log.Error("dropping a queued report that cannot be read", "seq", seq, "err", err)
				bad = append(bad, seq)
				continue
			}
			b, _ := json.Marshal(r)
			add(pending{seq: seq, report: r, size: len(b)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	for len(mem) > 0 && !full {
		add(mem[0])
		mem = mem[1:]
	}
	if len(bad) > 0 {
		if err := s.ack(bad...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ack removes delivered (or given up) reports: volatile ones at once,
// durable ones from the count at once and from the database and the
// journal with the next checkpoint.
func (s *store) ack(seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := make(map[uint64]bool, len(seqs))
	for _, seq := range seqs {
		gone[seq] = true
	}
	s.volatile = slices.DeleteFunc(s.volatile, func(p pending) bool {
		if gone[p.seq] {
			delete(gone, p.seq)
			s.volatileBytes -= int64(p.size)
			return true
		}
		return false
	})
	s.jReports = slices.DeleteFunc(s.jReports, func(p pending) bool {
		if gone[p.seq] {
			delete(gone, p.seq)
			s.acked[p.seq] = int64(p.sealed)
			s.count--
			s.bytes -= int64(p.sealed)
			return true
		}
		return false
	})
	if len(gone) == 0 {
		return nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		out := tx.Bucket(bucketOutbox)
		for seq := range gone {
			if _, done := s.acked[seq]; done {
				continue
			}
			if v := out.Get(seqKey(seq)); v != nil {
				s.acked[seq] = int64(len(v))
				s.count--
				s.bytes -= int64(len(v))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove delivered reports from the outbox: %w", err)
	}
	return nil
}

// queued says how many reports, and how many bytes, wait to be sent
// (those in the journal and volatile ones included).
func (s *store) queued() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count + len(s.volatile), s.bytes + s.volatileBytes
}
