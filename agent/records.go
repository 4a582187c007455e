package agent

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/dtkhq/dtk/internal/secret"
)

// The step records live in the agent's database beside the outbox, so that
// a step's final report and its record are one write (one journal entry,
// journal.go): one flush per changing step, where the state file took a
// rewrite of everything (the slice and every record, sealed, fsynced) on
// top of the report's own.
// Older agents kept them in the state file; openStore's caller moves them
// here once (migrate).
var (
	// bucketSteps: step ID → its record (stepRecord JSON), sealed with
	// state.key: records hold attributes, which may be sensitive.
	bucketSteps = []byte("steps")
	// bucketFailed: step ID → failKey of its last run, which failed.
	bucketFailed = []byte("failed")

	keyRecordSeq       = []byte("record_seq")
	keyRecordsMigrated = []byte("state_records_migrated")
)

const recordLabel = "agent-step-record"

// recordChange is what a converge changes in the step records, written in
// the same entry as its reports (store.write).
type recordChange struct {
	// put holds records as JSON by step ID; del the step IDs whose records
	// go.
	put map[string][]byte
	del []string
	// fail records failed runs (step ID → failKey); unfail forgets them.
	fail   map[string]string
	unfail []string
	// seq, when not zero, is the record sequence to store (localState.Seq).
	seq uint64
}

func (c *recordChange) putRecord(id string, rec *stepRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if c.put == nil {
		c.put = map[string][]byte{}
	}
	c.put[id] = b
	return nil
}

// seal puts the change into e, its records sealed with key.
func (c *recordChange) seal(e *entry, key []byte) error {
	for id, b := range c.put {
		v, err := secret.Seal(key, b, recordLabel)
		if err != nil {
			return fmt.Errorf("seal step record: %w", err)
		}
		if e.Put == nil {
			e.Put = map[string]string{}
		}
		e.Put[id] = v
	}
	e.Del, e.Fail, e.Unfail, e.RecordSeq = c.del, c.fail, c.unfail, c.seq
	return nil
}

// records reads the step records, the failed runs and the record sequence.
func (s *store) records() (steps map[string]*stepRecord, failed map[string]string, seq uint64, err error) {
	steps, failed = map[string]*stepRecord{}, map[string]string{}
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyRecordSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		if err := tx.Bucket(bucketFailed).ForEach(func(k, v []byte) error {
			failed[string(k)] = string(v)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketSteps).ForEach(func(k, v []byte) error {
			b, err := secret.Open(s.key, string(v), recordLabel)
			if err != nil {
				return fmt.Errorf("the record of step %s cannot be opened with %s (move %s and %s aside to start afresh): %w",
					k, stateKeyFile, storeFile, stateKeyFile, err)
			}
			rec := &stepRecord{}
			if err := json.Unmarshal(b, rec); err != nil {
				return fmt.Errorf("the record of step %s is corrupt: %w", k, err)
			}
			steps[string(k)] = rec
			return nil
		})
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read the step records: %w", err)
	}
	return steps, failed, seq, nil
}

// migrate moves what an older agent kept in its state file into the
// database, once each, in one transaction: the reports it queued (keeping
// their IDs: the coordinators de-duplicate them as before), and the step
// records, failed runs and record sequence. A crash before the caller
// rewrites the state file without them leaves them there; they are not
// moved twice.
func (s *store) migrate(old *localState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added, bytes int64
	var recs int
	next := s.next
	err := s.db.Update(func(tx *bolt.Tx) error {
		added, bytes, recs, next = 0, 0, 0, s.next
		meta, out := tx.Bucket(bucketMeta), tx.Bucket(bucketOutbox)
		if meta.Get(keyMigrated) == nil {
			next = max(next, old.Seq+1)
			for _, r := range old.Queue {
				v, err := s.seal(r)
				if err != nil {
					return err
				}
				if err := out.Put(seqKey(next), v); err != nil {
					return err
				}
				next++
				added++
				bytes += int64(len(v))
			}
			if err := meta.Put(keyNextSeq, seqKey(next)); err != nil {
				return err
			}
			if err := meta.Put(keyMigrated, []byte{1}); err != nil {
				return err
			}
		}
		if meta.Get(keyRecordsMigrated) != nil {
			return nil
		}
		c := &recordChange{fail: old.Failed, seq: old.Seq}
		for id, rec := range old.Steps {
			if err := c.putRecord(id, rec); err != nil {
				return err
			}
		}
		recs = len(c.put)
		e := &entry{}
		if err := c.seal(e, s.key); err != nil {
			return err
		}
		if err := e.apply(tx); err != nil {
			return err
		}
		return meta.Put(keyRecordsMigrated, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("move the state file's reports and step records into the agent database: %w", err)
	}
	s.next, s.reserved, s.stored = next, next, next
	s.count += int(added)
	s.bytes += bytes
	if added > 0 {
		s.log.Info("moved queued reports from the state file into the outbox", "reports", added)
	}
	if recs > 0 {
		s.log.Info("moved step records from the state file into the agent database", "records", recs)
	}
	return nil
}
