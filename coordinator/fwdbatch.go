package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Reports posted to a follower are batched there too (coordinator/DESIGN.md,
// "Reports are batched on the leader"): forwarding each agent's request on
// its own made the leader serve every report request of the fleet, two
// thirds of them a second time after a follower had already served them,
// and each follower pay a round trip to the leader per report. Now a
// follower gathers what arrives within batchWindow into one
// POST /v1/operator/reports, which joins the leader's batch as one
// request; each agent is answered only once the leader has answered, that
// is once its reports are committed.
//
// The follower has authenticated and authorized each agent (a node's
// certificate posts only its own reports) before its reports join a
// batch; the leader believes a batch from another coordinator's
// certificate only, as it believes the caller a coordinator names when it
// forwards.

// reportsRoute is the agents' route; forwardedReportsRoute the one
// between coordinators.
const (
	reportsRoute          = "POST /v1/nodes/{name}/reports"
	forwardedReportsRoute = "POST " + forwardedReportsPath
	forwardedReportsPath  = "/v1/operator/reports"
)

// FeatureReportBatches is the capability of taking a follower's batch of
// reports (forwardedReportsRoute). A follower batches only when the leader
// advertises it; otherwise it forwards each request as before.
const FeatureReportBatches = "report-batches"

// fwdInFlight bounds the batches a follower has at the leader at once:
// while they wait for their commit, the next reports gather into the next
// batch.
const fwdInFlight = 2

// reportForwarder is a follower's half of report batching.
type reportForwarder struct {
	in chan *batchReq
	// send delivers a batch to the leader and returns the index it was
	// committed at (the server's sendReports; tests replace it).
	send func(ctx context.Context, reports []plan.Report) (uint64, error)
	// maxBytes bounds a batch by the size of the requests it joins
	// (limits.report_body_bytes: no larger than one agent may send).
	maxBytes int64
	// window is batchWindow (tests lengthen it).
	window time.Duration
	// leader caches what the gossip pool says of the leader (reportLeader).
	leader atomic.Pointer[leaderInfo]
}

// leaderInfo is what the gossip pool says of the leader at Raft address
// raft, as of until minus leaderInfoTTL.
type leaderInfo struct {
	raft    string
	http    string
	batches bool
	until   time.Time
}

// leaderInfoTTL bounds how long reportLeader trusts what it read of a
// leader that is still the leader (a restarted leader is a new leader;
// this covers one whose tags change in place).
const leaderInfoTTL = time.Second

func newReportForwarder(s *Server) *reportForwarder {
	return &reportForwarder{in: make(chan *batchReq, 1024), send: s.sendReports, maxBytes: s.cfg.Limits.ReportBodyBytes, window: batchWindow}
}

// submit queues reports that came in a request of size bytes (-1 when
// unknown: the request then goes alone) and waits until the leader has
// committed them.
func (f *reportForwarder) submit(ctx context.Context, reports []plan.Report, size int64) (int, uint64, error) {
	if size < 0 || size > f.maxBytes {
		size = f.maxBytes
	}
	return queueAndWait(ctx, f.in, &batchReq{reports: reports, size: size, done: make(chan batchResult, 1)})
}

// run gathers batches until stop closes, with at most fwdInFlight at the
// leader at once.
func (f *reportForwarder) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	var flushing sync.WaitGroup
	defer func() {
		cancel()
		flushing.Wait()
	}()
	slots := make(chan struct{}, fwdInFlight)
	var next *batchReq // the request that did not fit the last batch
	for {
		select {
		case slots <- struct{}{}:
		case <-stop:
			f.drain(next)
			return
		}
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-f.in:
			case <-stop:
				f.drain(nil)
				return
			}
		}
		size := first.size
		batch, n, rest, stopped := gather(f.in, stop, first, f.window, func(_ int, r *batchReq) bool {
			if size+r.size > f.maxBytes {
				return false
			}
			size += r.size
			return true
		})
		if stopped {
			f.drain(rest)
			return
		}
		next = rest
		flushing.Add(1)
		go func() {
			defer func() { <-slots; flushing.Done() }()
			f.flush(ctx, batch, n)
		}()
	}
}

// drain fails the requests still queued at shutdown.
func (f *reportForwarder) drain(next *batchReq) {
	if next != nil {
		failBatch([]*batchReq{next}, ErrNotLeader)
	}
	for {
		select {
		case r := <-f.in:
			failBatch([]*batchReq{r}, ErrNotLeader)
		default:
			return
		}
	}
}

func (f *reportForwarder) flush(ctx context.Context, batch []*batchReq, n int) {
	idx, err := f.send(ctx, reportsOf(batch, n))
	if err != nil {
		failBatch(batch, err)
		return
	}
	answerBatch(batch, idx)
}

// leaderBatchesReports reports whether this coordinator follows a leader
// that takes batches of reports from followers.
func (s *Server) leaderBatchesReports() bool {
	_, batches := s.reportLeader()
	return batches
}

// reportLeader is the leader's HTTP address ("" when unknown) and whether
// it takes batches of reports. Every report a follower receives asks, and
// the gossip pool lists every agent too: it is read once per leader (and
// per leaderInfoTTL), not per report.
func (s *Server) reportLeader() (httpAddr string, batches bool) {
	leaderRaft, _ := s.raft.LeaderWithID()
	if leaderRaft == "" {
		return "", false
	}
	now := time.Now()
	if li := s.forwarder.leader.Load(); li != nil && li.raft == string(leaderRaft) && now.Before(li.until) {
		return li.http, li.batches
	}
	li := &leaderInfo{raft: string(leaderRaft), until: now.Add(leaderInfoTTL)}
	for _, p := range s.coordinators() {
		if p.RaftAddr == li.raft {
			li.http, li.batches = p.HTTPAddr, slices.Contains(strings.Split(p.Features, ","), FeatureReportBatches)
		}
	}
	if li.http == "" {
		// Not in the pool yet: the replicated directory may know it
		// (leaderHTTP), but not its features; ask again next time.
		return s.leaderHTTP(), false
	}
	s.forwarder.leader.Store(li)
	return li.http, li.batches
}

// batchedHere reports whether a write that reached this follower is
// served here rather than forwarded as it is: agents' reports, which go to
// the leader in a batch when it takes them, and batches from other
// followers, which only a leader takes.
func (s *Server) batchedHere(r *http.Request) bool {
	switch r.Pattern {
	case forwardedReportsRoute:
		return true
	case reportsRoute:
		return s.leaderBatchesReports()
	}
	return false
}

// sendReports commits a follower's batch through the leader. Like forward
// it waits out an election (up to forwardWait), gives up an attempt when
// Raft names another leader, and submits to its own batcher if this
// coordinator becomes the leader meanwhile. A batch that reached a leader
// and was lost with its answer may be sent again: the FSM applies a
// resent report once.
func (s *Server) sendReports(ctx context.Context, reports []plan.Report) (uint64, error) {
	body, err := json.Marshal(api.ReportsRequest{Reports: reports})
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(forwardWait)
	for {
		if s.raft.State() == raftLeader {
			_, idx, err := s.batcher.submit(ctx, reports)
			return idx, err
		}
		var err error
		if leader, _ := s.reportLeader(); leader != "" {
			var idx uint64
			idx, err = s.postReports(ctx, leader, body)
			if err == nil {
				return idx, nil
			}
			if ae := (*api.APIError)(nil); errors.As(err, &ae) && ae.Code != http.StatusServiceUnavailable {
				return 0, ae // refused: sending again would not help
			}
			s.log.Debug("forward reports to leader failed, retrying", "leader", leader, "reports", len(reports), "err", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, &api.APIError{Code: http.StatusServiceUnavailable, Message: "no reachable cluster leader; retry in a moment"}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// postReports is one attempt of sendReports.
func (s *Server) postReports(ctx context.Context, leader string, body []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardAttempt)
	defer cancel()
	s.cancelOnLeaderChange(ctx, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.peerURL(leader, forwardedReportsPath), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.pnet.forward.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		ae := &api.APIError{}
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Message = fmt.Sprintf("leader answered %s", resp.Status)
		}
		ae.Code = resp.StatusCode
		return 0, ae
	}
	var out api.ReportsResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("leader's answer: %w", err)
	}
	return out.Index, nil
}

// forwardedReports is POST /v1/operator/reports, between coordinators
// only: a follower's batch of reports, each already authorized there. Only
// the leader takes it (a follower that lost the leadership answers 503 and
// the sender tries the new leader).
func (s *Server) forwardedReports(w http.ResponseWriter, r *http.Request) error {
	var req api.ReportsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if s.raft.State() != raftLeader {
		return ErrNotLeader
	}
	n, index, err := s.batcher.submit(r.Context(), req.Reports)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ReportsResponse{Applied: n, Index: index})
}
