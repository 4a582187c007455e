package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// The journal (agent.journal) makes a write one append and one fdatasync,
// where a bbolt commit costs two fdatasyncs (its pages, then its meta page):
// a changing step's final report and record are on disk in one flush. It is
// a file of fixed size, filled with zeros when it is made, so that writing
// into it changes no metadata and fdatasync flushes the data alone.
//
// Each entry is a frame: its length, a CRC-32C of what follows it, the
// journal's epoch, and the entry as JSON (reports and records in it sealed
// as in the database). A checkpoint applies the entries to the database in
// one commit, which also stores the next epoch; the journal then starts
// again at its beginning, and what is left of older frames carries an older
// epoch and does not count. On open, the frames of the stored epoch are read
// up to the first that is not whole (a crash while it was written: the
// write had not returned, so nothing relied on it) and applied.
const (
	journalFile = "agent.journal"
	journalSize = 1 << 20
	// frameHeader: length (4), CRC-32C of epoch and entry (4), epoch (8).
	frameHeader = 16
)

var keyJournalEpoch = []byte("journal_epoch")

// errJournalFull: the entry does not fit in what is left of the journal;
// it goes to the database with a checkpoint.
var errJournalFull = errors.New("the journal is full")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	f     *os.File
	epoch uint64 // of the frames written now; stored in the database
	off   int64  // where the next frame goes
}

// entry is one write: reports queued (numbered, sealed) and a change of
// the step records (records sealed), and the next report sequence.
type entry struct {
	Reports   []entryReport     `json:"reports,omitempty"`
	Put       map[string]string `json:"put,omitempty"`
	Del       []string          `json:"del,omitempty"`
	Fail      map[string]string `json:"fail,omitempty"`
	Unfail    []string          `json:"unfail,omitempty"`
	RecordSeq uint64            `json:"record_seq,omitempty"`
	Next      uint64            `json:"next"`
}

type entryReport struct {
	Seq    uint64 `json:"seq"`
	Sealed string `json:"sealed"`
}

// apply writes the entry into the database (but for Next, which the
// caller stores).
func (e *entry) apply(tx *bolt.Tx) error {
	out, steps, failed := tx.Bucket(bucketOutbox), tx.Bucket(bucketSteps), tx.Bucket(bucketFailed)
	for _, r := range e.Reports {
		if err := out.Put(seqKey(r.Seq), []byte(r.Sealed)); err != nil {
			return err
		}
	}
	for _, id := range e.Del {
		if err := steps.Delete([]byte(id)); err != nil {
			return err
		}
	}
	for id, v := range e.Put {
		if err := steps.Put([]byte(id), []byte(v)); err != nil {
			return err
		}
	}
	for _, id := range e.Unfail {
		if err := failed.Delete([]byte(id)); err != nil {
			return err
		}
	}
	for id, key := range e.Fail {
		if err := failed.Put([]byte(id), []byte(key)); err != nil {
			return err
		}
	}
	if e.RecordSeq != 0 {
		return tx.Bucket(bucketMeta).Put(keyRecordSeq, seqKey(e.RecordSeq))
	}
	return nil
}

// append writes e at the end of the journal and flushes it to the disk.
func (j *journal) append(e *entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if j.off+frameHeader+int64(len(b)) > journalSize {
		return errJournalFull
	}
	frame := make([]byte, frameHeader+len(b))
	binary.BigEndian.PutUint32(frame[0:], uint32(len(b)))
	binary.BigEndian.PutUint64(frame[8:], j.epoch)
	copy(frame[frameHeader:], b)
	binary.BigEndian.PutUint32(frame[4:], crc32.Checksum(frame[8:], castagnoli))
	if _, err := j.f.WriteAt(frame, j.off); err != nil {
		return fmt.Errorf("write the journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("flush the journal: %w", err)
	}
	j.off += int64(len(frame))
	return nil
}

// restart starts the journal again at its beginning, in the next epoch
// (which the caller has stored).
func (j *journal) restart() {
	j.epoch++
	j.off = 0
}

// readEntries reads the frames of epoch from the beginning of b, up to the
// first that is not whole or is of another epoch.
func readEntries(b []byte, epoch uint64) []*entry {
	var out []*entry
	for off := 0; off+frameHeader <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		end := off + frameHeader + n
		if n == 0 || end > len(b) || binary.BigEndian.Uint64(b[off+8:]) != epoch ||
			crc32.Checksum(b[off+8:end], castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
			break
		}
		e := &entry{}
		if json.Unmarshal(b[off+frameHeader:end], e) != nil {
			break
		}
		out = append(out, e)
		off = end
	}
	return out
}

// openJournal opens (or makes) the journal, applies the entries it holds
// for the stored epoch to the database, and leaves it ready to take new
// ones.
func (s *store) openJournal(epoch uint64) error {
	path := filepath.Join(s.dir, journalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open the agent journal: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, journalSize))
	if err != nil {
		f.Close()
		return fmt.Errorf("read the agent journal %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("agent journal: %w", err)
	}
	s.journal = &journal{f: f, epoch: epoch}
	entries := readEntries(b, epoch)
	for _, e := range entries {
		for _, r := range e.Reports {
			s.count++
			s.bytes += int64(len(r.Sealed))
		}
		s.next = max(s.next, e.Next)
	}
	// Applied, and a new epoch in any case: every frame of an epoch is
	// then written by one run, one after the other.
	s.jEntries = entries
	if err := s.commit(nil); err != nil {
		f.Close()
		return fmt.Errorf("apply the agent journal %s to the database: %w", path, err)
	}
	if len(entries) > 0 {
		s.log.Info("applied the journal of a previous run", "entries", len(entries))
	}
	if fi, err := f.Stat(); err == nil && fi.Size() == journalSize {
		return nil
	}
	// A new journal (or one cut short while it was made): zeros, so that
	// writes into it change no metadata, then on the disk with its name.
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(make([]byte, journalSize), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("make the agent journal %s: %w", path, err)
	}
	return nil
}

// syncDir flushes a folder's entries (a new file's name) to the disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
