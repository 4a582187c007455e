package coordinator

import (
	"net/http"
	"strconv"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/hashicorp/raft"
)

// rolloutAction is POST /v1/services/NAME/rollout/{pause,resume,promote,abort}.
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	switch action {
	case RolloutPause, RolloutResume, RolloutPromote, RolloutAbort:
	default:
		return &api.APIError{Code: http.StatusNotFound, Message: "unknown rollout action " + strconv.Quote(action) + " (pause, resume, promote, abort)"}
	}
	resp, err := s.apply(RolloutType, RolloutCmd{Name: r.PathValue("name"), Action: action, Time: time.Now().UnixMilli(), Caller: callerFor(r)})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().Redact(resp))
}

// revertService is POST /v1/services/NAME/revert.
func (s *Server) revertService(w http.ResponseWriter, r *http.Request) error {
	var req api.RevertRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	if err := req.Rollout.Validate(); err != nil {
		return badRequest("%v", err)
	}
	resp, err := s.apply(RevertServiceType, RevertServiceCmd{Name: r.PathValue("name"), To: req.To, Rollout: req.Rollout, Time: time.Now().UnixMilli(), Caller: callerFor(r)})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.State().DeployAnswer(resp))
}

// getGenerations is GET /v1/services/NAME/generations.
func (s *Server) getGenerations(w http.ResponseWriter, r *http.Request) error {
	if s.State().Service(r.PathValue("name")) == nil {
		return &api.APIError{Code: http.StatusNotFound, Message: "service " + strconv.Quote(r.PathValue("name")) + " not found"}
	}
	return writeJSON(w, http.StatusOK, s.State().Generations(r.PathValue("name")))
}

// tickRollouts, on the leader, moves on the rollouts whose nodes' healthy
// time has run out (the FSM sees time only in commands).
func (s *Server) tickRollouts() {
	now := time.Now().UnixMilli()
	if s.raft.State() != raft.Leader || !s.State().RolloutDue(now) {
		return
	}
	if _, err := s.apply(RolloutTickType, RolloutTickCmd{Time: now}); err != nil {
		s.log.Warn("rollout tick", "err", err)
	}
}
