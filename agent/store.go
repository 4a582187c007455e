package agent

import (
	"bytes"
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
// one transaction. (The process groups of running steps are files of their
// own: procs.go.)
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

	mu       sync.Mutex // guards the outbox counters below and appends
	maxBytes int64
	bytes    int64 // sealed value bytes in the outbox
	count    int
	next     uint64 // sequence of the next report
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
	s := &store{db: db, key: key, node: node, dir: dir, log: log, maxBytes: maxBytes}
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

// privateDir makes a folder only the agent may enter, also when it exists
// with a wider mode.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

func (s *store) close() error { return s.db.Close() }

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
// (nil: none) in one transaction: both are on disk, or neither is.
func (s *store) write(reports []plan.Report, change *recordChange) error {
	if len(reports) == 0 && change == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []plan.Report
	var droppedBytes int64
	next, count, size := s.next, s.count, s.bytes
	err := s.db.Update(func(tx *bolt.Tx) error {
		dropped, droppedBytes = nil, 0
		next, count, size = s.next, s.count, s.bytes
		out := tx.Bucket(bucketOutbox)
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
		if next == s.next {
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
	s.next, s.count, s.bytes = next, count, size
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

// peek returns the oldest reports, at most maxCount of them and (but for
// the first) at most maxBytes of JSON. A value that no longer opens is
// dropped with an error logged, so that it cannot block the outbox.
func (s *store) peek(maxCount, maxBytes int) ([]pending, error) {
	var out []pending
	var bad [][]byte
	total := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < maxCount; k, v = c.Next() {
			r, err := s.open(v)
			if err != nil {
				s.log.Error("dropping a queued report that cannot be read", "seq", binary.BigEndian.Uint64(k), "err", err)
				bad = append(bad, bytes.Clone(k))
				continue
			}
			b, _ := json.Marshal(r)
			if len(out) > 0 && total+len(b) > maxBytes {
				break
			}
			total += len(b)
			out = append(out, pending{seq: binary.BigEndian.Uint64(k), report: r, size: len(b)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	if len(bad) > 0 {
		seqs := make([]uint64, len(bad))
		for i, k := range bad {
			seqs[i] = binary.BigEndian.Uint64(k)
		}
		if err := s.ack(seqs...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ack removes delivered (or given up) reports from the outbox.
func (s *store) ack(seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var removed int
	var size int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		removed, size = 0, 0
		out := tx.Bucket(bucketOutbox)
		for _, seq := range seqs {
			k := seqKey(seq)
			if v := out.Get(k); v != nil {
				size += int64(len(v))
				removed++
				if err := out.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove delivered reports from the outbox: %w", err)
	}
	s.count -= removed
	s.bytes -= size
	return nil
}

// queued says how many reports, and how many bytes, the outbox holds.
func (s *store) queued() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.bytes
}
