package coordinator

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
)

// callerFor is who a command is for, as the audit trail names them.
func callerFor(r *http.Request) Caller {
	c := Caller{By: callerOf(r).String()}
	if az := authz(r); az != nil {
		c.Token = az.Name
	}
	return c
}

// getHistory is GET /v1/services/{name}/history: the service's records,
// newest first. A deleted service's history is served while it is kept.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	recs, ok := s.State().History(name)
	if !ok {
		return fmt.Errorf("%w: service %q (nor a history of it)", ErrNotFound, name)
	}
	return writeJSON(w, http.StatusOK, recs)
}

// getEvents is GET /v1/events[?index=N&wait=D]: with index, a blocking
// query answering the events after N (at most maxEventsAnswer, oldest
// first) once there is one the caller may see; without, the newest events
// at once. A caller sees the events of the services it may read, node
// events with node read, coordinator events with operator read.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	keep := func(e *api.Event) bool {
		switch {
		case e.Service != "":
			return canRead(r, acl.KindService, e.Service)
		case e.Node != "":
			return canRead(r, acl.KindNode, e.Node)
		default:
			return canRead(r, acl.KindOperator, "")
		}
	}
	var out api.EventList
	if r.URL.Query().Has("index") {
		done, stop := waitDone(r, wait)
		defer stop()
		out.Events, out.Index = s.State().WaitEvents(done, index, maxEventsAnswer, keep)
	} else {
		out.Events, out.Index = s.State().Events(0, maxEventsAnswer, true, keep)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(out.Index, 10))
	return writeJSON(w, http.StatusOK, out)
}

// leaderLoop records in the log each time this coordinator becomes the
// leader (a leader-changed event), until shutdown.
func (s *Server) leaderLoop() {
	ch := s.raft.LeaderCh()
	for {
		select {
		case <-s.stop:
			return
		case leader := <-ch:
			if !leader {
				continue
			}
			_, err := s.apply(LeaderType|IgnoreUnknownFlag, LeaderCmd{Name: s.cfg.Name, Time: time.Now().UnixMilli()})
			if err != nil && s.raft.State() == raft.Leader {
				s.log.Warn("leader change not recorded", "err", err)
			}
		}
	}
}
