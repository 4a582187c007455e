package coordinator

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// History and events.
//
// Every deploy, delete, partial delete, operation (exec, dry run, cancel),
// upgrade and change of inputs leaves a record in the service's history,
// and the cluster keeps a stream of events (deploys started and finished,
// steps failed, drift repaired, nodes up, down and removed, leader
// changes). Both live in the replicated state, so that every coordinator
// serves the same, and both are written by Apply only: the time, the
// caller and the IDs travel in the command (the leader's clock), never
// time.Now() here. Both are bounded in Apply.
//
// Records are immutable once stored (cow.go): a record that changes (a
// deploy converging) is replaced by a changed copy in a new slice.

// Bounds of history and events.
const (
	// maxHistory is how many records a service keeps (oldest dropped).
	maxHistory = 50
	// maxHistoryDiffBytes bounds the encoded diff of one record; a larger
	// one is kept without attribute values (diff_truncated), and with only
	// the nodes that fit (diff_nodes_omitted counts the others).
	maxHistoryDiffBytes = 16 << 10
	// The history of a deleted service is kept for historyKeepDeleted
	// (by the clock of later entries), of maxDeletedHistories services at
	// most, so that "who deleted it, and when" can still be answered.
	historyKeepDeleted  = 24 * time.Hour
	maxDeletedHistories = 100
	// maxEvents is the length of the event ring; maxEventsAnswer how many
	// events one answer carries.
	maxEvents       = 2000
	maxEventsAnswer = 500
	// maxEventMessage bounds an event's message (a step's error).
	maxEventMessage = 256
)

// eventsKey is the watch key of the event stream.
const eventsKey = "events"

// eventData is the event part of the replicated state: the most recent
// events, oldest first, and the index of the last one.
type eventData struct {
	Last    uint64      `json:"last"`
	Entries []api.Event `json:"entries,omitempty"`
}

// applyAt is what the running Apply knows of its entry: its index, and the
// time and caller its command carries (zero in entries written before
// history). Apply sets it; history and events read it.
type applyAt struct {
	index     uint64
	time      int64
	by, token string
	// keys are the watch keys history and events changed.
	keys []string
	// plans are setPlan's notes for the end of the entry (cascade.go).
	plans []planNote
}

// setAt records the command's time and caller for this Apply.
func (s *State) setAt(t int64, by, token string) {
	s.at.time, s.at.by, s.at.token = t, by, token
}

// emit appends an event to the ring.
func (s *State) emit(e api.Event) {
	ev := &s.data.Events
	ev.Last++
	e.Index = ev.Last
	e.RaftIndex = s.at.index
	if e.TimeMS == 0 {
		e.TimeMS = s.at.time
	}
	ev.Entries = append(ev.Entries, e)
	// Trim in steps of a tenth, so that a full ring is not copied on every
	// event; a copy, so that what a snapshot holds is never written.
	if len(ev.Entries) > maxEvents+maxEvents/10 {
		ev.Entries = append([]api.Event(nil), ev.Entries[len(ev.Entries)-maxEvents:]...)
	}
	s.at.keys = append(s.at.keys, eventsKey)
}

// eventsWindow is the ring as readers see it: at most maxEvents.
func eventsWindow(entries []api.Event) []api.Event {
	if len(entries) > maxEvents {
		return entries[len(entries)-maxEvents:]
	}
	return entries
}

// isPlanRecord says a record follows a plan: it is finished by reports.
func isPlanRecord(kind string) bool {
	return kind == api.HistoryDeploy || kind == api.HistoryDelete || kind == api.HistoryDeletePart
}

// recordID names a record: the service and the Raft index that started it.
func recordID(name string, idx uint64) string {
	return name + "-" + strconv.FormatUint(idx, 10)
}

// newRecord starts a record with this Apply's time and caller.
func (s *State) newRecord(name, kind string, gen uint64) *api.HistoryRecord {
	return &api.HistoryRecord{
		ID: recordID(name, s.at.index), Service: name, Kind: kind, Generation: gen,
		By: s.at.by, Token: s.at.token, StartedMS: s.at.time, Result: api.ResultRunning,
		Diff: []plan.NodeDiff{}, Index: s.at.index,
	}
}

// addRecord stores a new record: a plan record that is still running is
// superseded by a new plan record (it ends failed, saying so); the oldest
// records beyond maxHistory go, and so do old histories of deleted
// services.
func (s *State) addRecord(rec *api.HistoryRecord) {
	old := s.data.History[rec.Service]
	recs := make([]*api.HistoryRecord, 0, min(len(old)+1, maxHistory))
	start := max(0, len(old)+1-maxHistory)
	for _, r := range old[start:] {
		if isPlanRecord(rec.Kind) && isPlanRecord(r.Kind) && r.Result == api.ResultRunning {
			cp := *r
			cp.Result, cp.EndedMS, cp.Index = api.ResultFailed, s.at.time, s.at.index
			cp.Message = joinMessage(cp.Message, fmt.Sprintf("superseded by a %s (generation %d)", rec.Kind, rec.Generation))
			r = &cp
		}
		recs = append(recs, r)
	}
	recs = append(recs, rec)
	s.data.History[rec.Service] = recs
	s.at.keys = append(s.at.keys, historyKey(rec.Service))
	s.pruneHistories()
}

// replaceRecord stores a changed copy of the i-th record of a service.
func (s *State) replaceRecord(name string, i int, rec *api.HistoryRecord) {
	recs := slices.Clone(s.data.History[name])
	rec.Index = s.at.index
	recs[i] = rec
	s.data.History[name] = recs
	s.at.keys = append(s.at.keys, historyKey(name))
}

// pruneHistories drops the histories of services deleted more than
// historyKeepDeleted ago, and beyond maxDeletedHistories the oldest.
func (s *State) pruneHistories() {
	type orphan struct {
		name string
		last int64
	}
	var orphans []orphan
	for name, recs := range s.data.History {
		if s.data.Services[name] != nil {
			continue
		}
		last := int64(0)
		for _, r := range recs {
			last = max(last, r.StartedMS, r.EndedMS)
		}
		if last+historyKeepDeleted.Milliseconds() < s.at.time {
			delete(s.data.History, name)
			continue
		}
		orphans = append(orphans, orphan{name, last})
	}
	if len(orphans) <= maxDeletedHistories {
		return
	}
	sort.Slice(orphans, func(i, j int) bool {
		if orphans[i].last != orphans[j].last {
			return orphans[i].last < orphans[j].last
		}
		return orphans[i].name < orphans[j].name
	})
	for _, o := range orphans[:len(orphans)-maxDeletedHistories] {
		delete(s.data.History, o.name)
	}
}

// openPlanRecord finds a service's newest plan record that reports may
// still change (running, or failed and still at the service's generation),
// or -1.
func (s *State) openPlanRecord(name string) (int, *api.HistoryRecord) {
	recs := s.data.History[name]
	for i := len(recs) - 1; i >= 0; i-- {
		if r := recs[i]; isPlanRecord(r.Kind) {
			if r.Result == api.ResultRunning || r.Result == api.ResultFailed {
				return i, r
			}
			return -1, nil
		}
	}
	return -1, nil
}

// historyDiff is the diff a record keeps: unchanged and removed steps
// without their attributes, changed steps with the changed ones only; when
// that is still larger than maxHistoryDiffBytes, no attribute values, and
// when even that is larger, only the nodes that fit, those with changes
// first, the others counted (omitted). Sensitive values are redacted
// (plan.Diff does it).
func historyDiff(old, next *plan.Plan) (d []plan.NodeDiff, truncated bool, omitted int) {
	d = plan.Diff(old, next)
	if d == nil {
		return []plan.NodeDiff{}, false, 0
	}
	for i := range d {
		for j := range d[i].Steps {
			sd := &d[i].Steps[j]
			switch sd.Change {
			case plan.ChangeUnchanged, plan.ChangeRemove, plan.ChangeRun:
				sd.Attributes = nil
			case plan.ChangeChange:
				var keep []*plan.Value
				for _, v := range sd.Attributes {
					if slices.Contains(sd.Changed, v.Name) {
						keep = append(keep, v)
					}
				}
				sd.Attributes = keep
			}
		}
	}
	if b, _ := json.Marshal(d); len(b) <= maxHistoryDiffBytes {
		return d, false, 0
	}
	for i := range d {
		for j := range d[i].Steps {
			d[i].Steps[j].Attributes = nil
		}
	}
	d, omitted = boundNodes(d)
	return d, true, omitted
}

// boundNodes keeps the node diffs that fit in maxHistoryDiffBytes encoded,
// those with a change first, in their order, and says how many it left
// out. Without it a record listed every node of the plan whatever its
// size: a service deployed 50 times on 1,000 agents kept about 13 KiB per
// agent of history (docs/performance.md, "Memory per connected agent").
func boundNodes(d []plan.NodeDiff) ([]plan.NodeDiff, int) {
	changed := func(nd *plan.NodeDiff) bool {
		return slices.ContainsFunc(nd.Steps, func(sd plan.StepDiff) bool { return sd.Change != plan.ChangeUnchanged })
	}
	keep := make([]bool, len(d))
	size, n := 2, 0 // the brackets
	for _, first := range []bool{true, false} {
		for i := range d {
			if keep[i] || changed(&d[i]) != first {
				continue
			}
			b, _ := json.Marshal(&d[i])
			if size+len(b)+1 > maxHistoryDiffBytes {
				continue
			}
			keep[i], size, n = true, size+len(b)+1, n+1
		}
	}
	if n == len(d) {
		return d, 0
	}
	out := make([]plan.NodeDiff, 0, n)
	for i := range d {
		if keep[i] {
			out = append(out, d[i])
		}
	}
	return out, len(d) - n
}

// startPlanRecord records the start of a deploy, delete or partial delete
// of svc at generation gen, from plan old to plan next, and emits its
// event.
func (s *State) startPlanRecord(svc *plan.Service, kind string, gen uint64, old, next *plan.Plan, msg string) {
	rec := s.newRecord(svc.Name, kind, gen)
	rec.Diff, rec.DiffTruncated, rec.DiffNodesOmitted = historyDiff(old, next)
	rec.Message = msg
	s.addRecord(rec)
	typ := api.EventDeployStarted
	if kind != api.HistoryDeploy {
		typ = api.EventDeleteStarted
	}
	s.emit(api.Event{Type: typ, Service: svc.Name, Generation: gen, Message: msg})
}

// startDeleteRecord records a delete of svc at generation gen; a delete
// that was waiting for its children (deleteTree) continues its record.
func (s *State) startDeleteRecord(svc *plan.Service, gen uint64, old, next *plan.Plan) {
	if i, r := s.openPlanRecord(svc.Name); r != nil && r.Kind == api.HistoryDelete && r.Result == api.ResultRunning {
		cp := *r
		cp.Generation = gen
		cp.Diff, cp.DiffTruncated, cp.DiffNodesOmitted = historyDiff(old, next)
		cp.Message = ""
		s.replaceRecord(svc.Name, i, &cp)
		return
	}
	s.startPlanRecord(svc, api.HistoryDelete, gen, old, next, "")
}

// trackService brings svc's open plan record up to date with its steps:
// counts, and the result once the service converged or failed.
func (s *State) trackService(svc *plan.Service) {
	s.noteGeneration(svc)
	i, r := s.openPlanRecord(svc.Name)
	if r == nil || r.Generation != svc.Generation {
		return
	}
	cp := *r
	cp.Changed, cp.Unchanged, cp.Failed, cp.Skipped = s.stepCounts(svc)
	switch svc.State {
	case plan.StateConverged:
		cp.Result = api.ResultConverged
	case plan.StateFailed:
		cp.Result = api.ResultFailed
	default:
		cp.Result = api.ResultRunning
	}
	if cp.Result == r.Result && cp.Changed == r.Changed && cp.Unchanged == r.Unchanged && cp.Failed == r.Failed && cp.Skipped == r.Skipped {
		return
	}
	if cp.Result != r.Result {
		cp.EndedMS = 0
		if cp.Result != api.ResultRunning {
			cp.EndedMS = s.at.time
			typ := api.EventDeployFinished
			if cp.Kind != api.HistoryDeploy {
				typ = api.EventDeleteFinished
			}
			s.emit(api.Event{Type: typ, Service: svc.Name, Generation: cp.Generation, Message: cp.Result})
		}
	}
	s.replaceRecord(svc.Name, i, &cp)
}

// finishDeleteRecord ends svc's delete record when the service is removed.
func (s *State) finishDeleteRecord(svc *plan.Service) {
	i, r := s.openPlanRecord(svc.Name)
	if r == nil || r.Kind != api.HistoryDelete {
		return
	}
	cp := *r
	cp.Changed, cp.Unchanged, cp.Failed, cp.Skipped = s.stepCounts(svc)
	cp.Result, cp.EndedMS = api.ResultDeleted, s.at.time
	s.replaceRecord(svc.Name, i, &cp)
	s.emit(api.Event{Type: api.EventDeleteFinished, Service: svc.Name, Generation: cp.Generation, Message: api.ResultDeleted})
}

// stepCounts counts svc's steps by how their last run went.
func (s *State) stepCounts(svc *plan.Service) (changed, unchanged, failed, skipped int) {
	if svc.Plan == nil {
		return
	}
	for _, np := range svc.Plan.Nodes {
		for _, st := range np.Steps {
			ss := stepStatus(st, s.data.Reports[st.ID])
			switch ss.State {
			case plan.StepOK:
				if ss.Changed {
					changed++
				} else {
					unchanged++
				}
			case plan.StepFailed:
				failed++
			case plan.StepSkipped:
				skipped++
			}
		}
	}
	return
}

// instantRecord records a change that is done as it is applied (upgrade,
// inputs).
func (s *State) instantRecord(svc *plan.Service, kind, msg string) {
	rec := s.newRecord(svc.Name, kind, svc.Generation)
	rec.Result, rec.EndedMS, rec.Message = api.ResultDone, s.at.time, msg
	s.addRecord(rec)
}

// opRecordKind maps operation kinds to record kinds (logs are reads, not
// recorded).
var opRecordKind = map[string]string{plan.OpExec: api.HistoryExec, plan.OpDryRun: api.HistoryDryRun, plan.OpCancel: api.HistoryCancel}

// startOpRecord records an operation.
func (s *State) startOpRecord(op *plan.Op) {
	kind, ok := opRecordKind[op.Kind]
	svc := s.data.Services[op.Service]
	if !ok || svc == nil {
		return
	}
	rec := s.newRecord(op.Service, kind, svc.Generation)
	rec.ID, rec.Op, rec.Action = op.ID, op.ID, op.Action
	if rec.StartedMS == 0 {
		rec.StartedMS = op.Created
	}
	if len(op.Skipped) > 0 {
		rec.Message = "left out (down): " + strings.Join(op.Skipped, ", ")
	}
	s.addRecord(rec)
	if op.Kind == plan.OpExec {
		s.emit(api.Event{Type: api.EventExecStarted, Service: op.Service, Generation: svc.Generation, Message: op.Action, TimeMS: rec.StartedMS})
	}
}

// trackOp brings an operation's record up to date with its results.
func (s *State) trackOp(op *plan.Op) {
	recs := s.data.History[op.Service]
	i := slices.IndexFunc(recs, func(r *api.HistoryRecord) bool { return r.Op == op.ID })
	if i < 0 || recs[i].Result != api.ResultRunning {
		return
	}
	cp := *recs[i]
	cp.Changed, cp.Unchanged, cp.Failed, cp.Skipped = 0, 0, 0, 0
	last := int64(0)
	for _, r := range op.Results {
		switch r.State {
		case plan.StepOK:
			if r.Changed {
				cp.Changed++
			} else {
				cp.Unchanged++
			}
		case plan.StepFailed:
			cp.Failed++
		case plan.StepSkipped:
			cp.Skipped++
		}
		last = max(last, r.FinishedAt)
	}
	if opFinished(op) {
		cp.Result, cp.EndedMS = api.ResultDone, s.at.time
		if cp.Failed > 0 {
			cp.Result = api.ResultFailed
		}
		if cp.EndedMS == 0 { // an entry from before history carried no time
			cp.EndedMS = max(last, cp.StartedMS)
		}
	}
	s.replaceRecord(op.Service, i, &cp)
}

// opFinished says every agent of an operation is done with it. It runs for
// every message of results an agent sends (a thousand or more for a dry
// run of 1,000 agents), so it looks at each list once.
func opFinished(op *plan.Op) bool {
	if len(op.Done) < len(op.Steps) {
		return false // Done has no duplicates (a resend is not applied)
	}
	done := make(map[string]bool, len(op.Done))
	for _, a := range op.Done {
		done[a] = true
	}
	for agent := range op.Steps {
		if !done[agent] {
			return false
		}
	}
	return true
}

// reportEvents emits the events of one applied report: a failed step, a
// repaired drift. secrets caches the service's secret texts, which an
// error may contain.
func (s *State) reportEvents(r *plan.Report, secrets map[string][]string) {
	var typ, msg string
	switch {
	case r.State == plan.StepFailed:
		typ, msg = api.EventStepFailed, r.Error
		if msg == "" {
			msg = "exit code " + strconv.Itoa(r.ExitCode)
		}
	case r.State == plan.StepOK && r.Drift:
		typ = api.EventDriftRepaired
	default:
		return
	}
	if msg != "" {
		sec, ok := secrets[r.Service]
		if !ok {
			if svc := s.data.Services[r.Service]; svc != nil {
				sec = sortSecrets(s.serviceSecretsLocked(svc))
			}
			secrets[r.Service] = sec
		}
		msg = cutMessage(scrub(msg, sec))
	}
	s.emit(api.Event{Type: typ, Service: r.Service, Node: r.Node, Generation: r.Generation, Step: r.StepID, Message: msg})
}

// cutMessage keeps an event message's first line, at most maxEventMessage
// bytes (on a rune boundary).
func cutMessage(m string) string {
	m, _, cut := strings.Cut(strings.TrimSpace(m), "\n")
	if len(m) > maxEventMessage {
		m, cut = m[:maxEventMessage], true
		for len(m) > 0 && !utf8.ValidString(m) {
			m = m[:len(m)-1]
		}
	}
	if cut {
		m += " …"
	}
	return m
}

func joinMessage(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// inputsMessage names the inputs a change sets and unsets (never values).
func inputsMessage(in map[string]string) string {
	var set, unset []string
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if in[k] == "" {
			unset = append(unset, k)
		} else {
			set = append(set, k)
		}
	}
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "set "+strings.Join(set, ", "))
	}
	if len(unset) > 0 {
		parts = append(parts, "unset "+strings.Join(unset, ", "))
	}
	return strings.Join(parts, "; ")
}

func historyKey(name string) string { return "history/" + name }

// --- reads ---

// History lists a service's records, newest first, and whether the
// service or its history exists.
func (s *State) History(name string) ([]api.HistoryRecord, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	recs, ok := s.data.History[name]
	out := make([]api.HistoryRecord, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		out = append(out, *recs[i])
	}
	return out, ok || s.data.Services[name] != nil
}

// Events returns the events after index (oldest first, at most limit) that
// keep says the reader may see, and the index to ask from next. With
// index 0 and newest, it returns the newest limit events instead.
func (s *State) Events(index uint64, limit int, newest bool, keep func(*api.Event) bool) ([]api.Event, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eventsLocked(index, limit, newest, keep)
}

func (s *State) eventsLocked(index uint64, limit int, newest bool, keep func(*api.Event) bool) ([]api.Event, uint64) {
	ev := &s.data.Events
	entries := eventsWindow(ev.Entries)
	if index > ev.Last {
		index = 0 // the stream was reset (a restore): start again
	}
	out := []api.Event{}
	if newest {
		for i := len(entries) - 1; i >= 0 && len(out) < limit; i-- {
			if e := entries[i]; e.Index > index && keep(&e) {
				out = append(out, e)
			}
		}
		slices.Reverse(out)
		return out, ev.Last
	}
	next := ev.Last
	// Entries are in index order: find the first after index.
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Index > index })
	for ; i < len(entries); i++ {
		e := entries[i]
		if !keep(&e) {
			continue
		}
		out = append(out, e)
		if len(out) == limit {
			next = e.Index
			break
		}
	}
	return out, next
}

// WaitEvents blocks until an event after index that keep accepts is
// there, or done is closed, and returns what Events would.
func (s *State) WaitEvents(done <-chan struct{}, index uint64, limit int, keep func(*api.Event) bool) ([]api.Event, uint64) {
	for {
		s.mu.RLock()
		out, next := s.eventsLocked(index, limit, false, keep)
		if len(out) > 0 {
			s.mu.RUnlock()
			return out, next
		}
		ch, release := s.watch.wait(eventsKey)
		s.mu.RUnlock()
		// Events the reader may not see are passed over: wait for later
		// ones (what it was answered is always "nothing after next").
		index = next
		select {
		case <-ch:
			release()
		case <-done:
			release()
			return out, next
		}
	}
}
