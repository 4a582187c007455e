package agent

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
// records (records.go). A step's final report and its record are written in
// one transaction, one commit per changing step.
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

	mu       sync.Mutex // guards the fields below and every write transaction
	maxBytes int64
	bytes    int64 // sealed value bytes in the outbox (acknowledged ones left out)
	count    int
	next     uint64 // sequence of the next report
	// reserved is the sequence stored in the database (keyNextSeq): every
	// sequence below it is durably used, so that a restarted agent never
	// numbers a report with a sequence a coordinator may have seen. A
	// report is sent only once its sequence is below it.
	reserved uint64
	// volatile holds the reports kept in memory only: "running" reports
	// (a step started, its progress). Their sequences come from next like
	// the others'; a crash loses them, which costs the coordinators a
	// status they would have overwritten anyway.
	volatile      []pending
	volatileBytes int64
	// acked holds delivered reports still in the outbox (sequence → sealed
	// size): they go with the next write transaction, or flushAcks, rather
	// than with a commit of their own. A crash before that sends them
	// again, and the coordinators drop the resends.
	acked map[uint64]int64
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
	if err := privateDir(filepath.Join(dir, runningDir)); err != nil {
		db.Close()
		return nil, fmt.Errorf("agent data dir: %w", err)
	}
	s := &store{db: db, key: key, node: node, dir: dir, log: log, maxBytes: maxBytes, acked: map[uint64]int64{}}
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
		s.reserved = s.next
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			s.bytes += int64(len(v))
			s.count++
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("agent database %s: %w", path, err)
	}
	return s, nil
}

// close deletes the acknowledged reports and closes the database.
// privateDir makes a folder only the agent may enter, also when it exists
// with a wider mode.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

func (s *store) close() error {
	err := s.flushAcks()
	return errors.Join(err, s.db.Close())
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

// append adds reports to the outbox in one transaction, giving each its ID.
// When the outbox would hold more than its byte bound, the oldest reports
// are dropped (logged): the agent never blocks on a full outbox.
func (s *store) append(reports ...plan.Report) error {
	if len(reports) == 0 {
		return nil
	}
	return s.write(reports, nil)
}

// write commits reports to the outbox and a change of the step records
// (nil: none) in one transaction: both are on disk, or neither is. It
// also deletes the acknowledged reports and stores the next sequence,
// which makes the volatile reports numbered so far sendable.
func (s *store) write(reports []plan.Report, change *recordChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(reports) == 0 && change == nil && len(s.acked) == 0 && s.next == s.reserved {
		return nil
	}
	var dropped []plan.Report
	var droppedBytes int64
	next, count, size := s.next, s.count, s.bytes
	err := s.db.Update(func(tx *bolt.Tx) error {
		dropped, droppedBytes = nil, 0
		next, count, size = s.next, s.count, s.bytes
		out := tx.Bucket(bucketOutbox)
		for seq := range s.acked {
			if err := out.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		for _, r := range reports {
			r.ID, r.Node = s.reportID(next), s.node
			v, err := s.seal(r)
			if err != nil {
				return err
			}
			if err := out.Put(seqKey(next), v); err != nil {
				return err
			}
			next++
			count++
			size += int64(len(v))
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
		if change != nil {
			if err := change.apply(tx, s); err != nil {
				return err
			}
		}
		if next == s.reserved {
			return nil
		}
		return tx.Bucket(bucketMeta).Put(keyNextSeq, seqKey(next))
	})
	if err != nil {
		if len(reports) == 0 {
			return err
		}
		return fmt.Errorf("queue report: %w", err)
	}
	s.next, s.reserved, s.count, s.bytes = next, next, count, size
	clear(s.acked)
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

// flushAcks deletes the acknowledged reports from the outbox.
func (s *store) flushAcks() error {
	s.mu.Lock()
	n := len(s.acked)
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := s.write(nil, nil); err != nil {
		return fmt.Errorf("remove delivered reports from the outbox: %w", err)
	}
	return nil
}

// ackPending says whether acknowledged reports wait for flushAcks.
func (s *store) ackPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked) > 0
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
	// shrunk counts how often the report was made smaller after a 413
	// (send.go); the outbox keeps the original.
	shrunk int
}

// peek returns the oldest reports, durable and volatile in sequence order,
// at most maxCount of them and (but for the first) at most maxBytes of
// JSON. It returns only reports whose sequence is stored (below reserved):
// those after them wait. A value that no longer opens is dropped with an
// error logged, so that it cannot block the outbox.
func (s *store) peek(maxCount, maxBytes int) ([]pending, error) {
	// What was numbered up to now, in one view: durable reports are
	// committed under mu, so every report below the limit is either in
	// the database or in the volatile copy.
	s.mu.Lock()
	limit := s.reserved
	var volatile []pending
	for _, p := range s.volatile {
		if p.seq < limit {
			volatile = append(volatile, p)
		}
	}
	acked := make(map[uint64]bool, len(s.acked))
	for seq := range s.acked {
		acked[seq] = true
	}
	s.mu.Unlock()
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
			if acked[seq] {
				continue
			}
			for len(volatile) > 0 && volatile[0].seq < seq && !full {
				add(volatile[0])
				volatile = volatile[1:]
			}
			if full {
				break
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
	for len(volatile) > 0 && !full {
		add(volatile[0])
		volatile = volatile[1:]
	}
	if len(bad) > 0 {
		if err := s.ack(bad...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ack removes delivered (or given up) reports: volatile ones at once,
// durable ones from the count at once and from the database with the next
// write (or flushAcks).
func (s *store) ack(seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := make(map[uint64]bool, len(seqs))
	for _, seq := range seqs {
		gone[seq] = true
	}
	kept := s.volatile[:0]
	for _, p := range s.volatile {
		if gone[p.seq] {
			delete(gone, p.seq)
			s.volatileBytes -= int64(p.size)
			continue
		}
		kept = append(kept, p)
	}
	clear(s.volatile[len(kept):])
	s.volatile = kept
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
// (volatile ones included).
func (s *store) queued() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count + len(s.volatile), s.bytes + s.volatileBytes
}
