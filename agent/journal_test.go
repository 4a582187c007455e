package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// writeStep writes what a changing step writes: its final report and its
// record.
func writeStep(t *testing.T, s *store, id, output string) {
	t.Helper()
	c := &recordChange{unfail: []string{id}}
	if err := c.putRecord(id, &stepRecord{Digest: "d-" + id, Attributes: map[string]json.RawMessage{"secret": json.RawMessage(`"hunter2"`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.write([]plan.Report{{StepID: id, State: plan.StepOK, Output: output}}, c); err != nil {
		t.Fatal(err)
	}
}

func recordIDs(t *testing.T, s *store) string {
	t.Helper()
	steps, _, _, err := s.records()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range steps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// A step's write is in the journal alone until a checkpoint: a crash (the
// files copied as they are) keeps it, and the next start applies it to the
// database once.
func TestStore_Journal_ReplayedAfterACrash(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	writeStep(t, s, "a", "")
	writeStep(t, s, "b", "")
	if err := s.write(nil, &recordChange{fail: map[string]string{"c": "d#1"}}); err != nil {
		t.Fatal(err)
	}
	c := copyStore(t, dir)
	if got := seqs(peekAll(t, c)); got != "1,2" {
		t.Fatalf("reports after the crash: %s, want 1,2", got)
	}
	if got := recordIDs(t, c); got != "a,b" {
		t.Fatalf("records after the crash: %s", got)
	}
	if _, failed, _, _ := c.records(); failed["c"] != "d#1" {
		t.Fatalf("failed runs after the crash: %v", failed)
	}
	if p := peekAll(t, c); p[1].report.ID != s.reportID(2) || c.next != 3 {
		t.Fatalf("IDs and numbering after the crash: %s, next %d", p[1].report.ID, c.next)
	}
	// Started again from the first copy (its journal applied): not twice.
	c.close()
	again := copyStore(t, c.dir)
	if got := seqs(peekAll(t, again)); got != "1,2" || recordIDs(t, again) != "a,b" {
		t.Fatalf("after a second start: reports %s, records %s", got, recordIDs(t, again))
	}
	// Sealed at rest in the journal too.
	b, _ := os.ReadFile(filepath.Join(dir, journalFile))
	if strings.Contains(string(b), "hunter2") {
		t.Fatal("the journal holds a record in clear")
	}
}

// A frame cut short by a crash while it was written (its write never
// returned) is not applied, nor anything after it.
func TestStore_Journal_TornFrameIgnored(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	writeStep(t, s, "a", "")
	end := s.journal.off
	writeStep(t, s, "b", "")
	s.journal.f.WriteAt([]byte{'X'}, end+frameHeader+5) // the second frame damaged
	c := copyStore(t, dir)
	if got := seqs(peekAll(t, c)); got != "1" || recordIDs(t, c) != "a" {
		t.Fatalf("after a torn frame: reports %s, records %s; want the first step alone", got, recordIDs(t, c))
	}
}

// After a checkpoint the journal starts again at its beginning in a new
// epoch: older frames left after the new ones are not applied again (a
// report acknowledged and deleted since would come back, a record
// forgotten since would return).
func TestStore_Journal_OlderEpochNotReplayed(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	long := strings.Repeat("x", 2000)
	writeStep(t, s, "a", long)
	first := s.journal.off
	writeStep(t, s, "b", long)
	writeStep(t, s, "c", long)
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// b and c delivered and forgotten, in the database.
	s.ack(2, 3)
	if err := s.write(nil, &recordChange{del: []string{"b", "c"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// A frame as long as a's: b's and c's old frames follow it whole.
	writeStep(t, s, "d", long)
	if s.journal.off != first {
		t.Fatalf("d's frame is %d bytes, a's %d: the test proves nothing", s.journal.off, first)
	}
	c := copyStore(t, dir)
	if got := seqs(peekAll(t, c)); got != "1,4" || recordIDs(t, c) != "a,d" {
		t.Fatalf("after a crash: reports %s, records %s; want 1,4 and a,d", got, recordIDs(t, c))
	}
}

// A full journal sends the write to the database with a checkpoint:
// nothing is lost, and the journal starts again.
func TestStore_Journal_FullGoesToTheDatabase(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	long := strings.Repeat("x", 3000)
	n := 2 * journalSize / 4000
	for i := range n {
		writeStep(t, s, fmt.Sprintf("s%04d", i), long)
	}
	if s.journal.off >= journalSize/2+10000 || len(s.jEntries) >= n {
		t.Fatalf("the journal was not checkpointed when full: %d bytes, %d entries", s.journal.off, len(s.jEntries))
	}
	c := copyStore(t, dir)
	if got := peekAll(t, c); len(got) != n || got[n-1].seq != uint64(n) {
		t.Fatalf("after a crash: %d reports, want %d", len(got), n)
	}
	if steps, _, _, _ := c.records(); len(steps) != n {
		t.Fatalf("after a crash: %d records, want %d", len(steps), n)
	}
}
