package coordinator

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
)

// The audit trail: every accepted write (module push, stage, set, deploy,
// delete, exec, cancel, ACL and node changes, operator actions) is recorded
// with who made it (certificate identity and ACL token accessor), when,
// from where and what, on the coordinator that ran it (the leader), in the
// replicated state. Agents' own traffic (reports, registration, results,
// renewal) is not: it is the system working, not someone acting.

// maxAudit bounds the trail; the oldest entries are dropped and counted.
const maxAudit = 10000

// auditData is the audit part of the replicated state.
type auditData struct {
	Entries []api.AuditEntry `json:"entries"`
	Dropped uint64           `json:"dropped"`
}

// AuditCmd appends entries.
type AuditCmd struct {
	Entries []api.AuditEntry `json:"entries"`
}

func (s *State) appendAudit(idx uint64, c *AuditCmd) (any, []string) {
	a := &s.data.Audit
	for _, e := range c.Entries {
		e.Index = idx
		a.Entries = append(a.Entries, e)
	}
	if over := len(a.Entries) - maxAudit; over > 0 {
		a.Dropped += uint64(over)
		a.Entries = append([]api.AuditEntry(nil), a.Entries[over:]...)
	}
	return len(c.Entries), []string{"audit"}
}

// AuditEntries lists entries (copies) oldest first, filtered, at most
// limit (the newest).
func (s *State) AuditEntries(service string, since int64, limit int) ([]api.AuditEntry, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []api.AuditEntry
	for _, e := range s.data.Audit.Entries {
		if e.TimeMS < since || (service != "" && e.Service != service) {
			continue
		}
		out = append(out, e)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return append([]api.AuditEntry{}, out...), s.data.Audit.Dropped
}

// statusWriter remembers the status a handler answered with (the audit
// trail and the request metrics); Unwrap keeps http.ResponseController
// (deadlines, flushes of streamed answers) working through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers (logs --follow) through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// audited reports whether a route's writes go into the trail.
func audited(r *http.Request, a access) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && a != accessNodeWrite && a != accessServer
}

// worthRecording leaves out answers that record nothing new: an agent
// polling its pending enrollment (202) every few seconds.
func worthRecording(code int) bool {
	return code > 0 && code < 400 && code != http.StatusAccepted
}

// record queues an accepted write for the trail.
func (s *Server) record(r *http.Request, code int) {
	c := callerOf(r)
	e := api.AuditEntry{
		TimeMS: time.Now().UnixMilli(), Caller: c.String(), Remote: c.remote,
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Code: code,
	}
	if az := authz(r); az != nil {
		e.Token = az.Name
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/services/"); ok {
		e.Service, _, _ = strings.Cut(rest, "/")
	} else if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		e.Service = n.service
	}
	select {
	case s.auditQ <- e:
	default:
		s.log.Warn("audit queue full: entry dropped", "method", e.Method, "path", e.Path, "caller", e.Caller)
	}
}

// auditNote lets a handler name the service a request is about when the
// name is in the body (stage), not the path.
type auditNote struct{ service string }

type auditNoteKey struct{}

func noteService(r *http.Request, name string) {
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		n.service = name
	}
}

// auditLoop commits queued entries in batches.
func (s *Server) auditLoop() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var batch []api.AuditEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := s.apply(AuditType, AuditCmd{Entries: batch}); err != nil {
			s.log.Warn("audit entries not recorded", "entries", len(batch), "err", err)
		}
		batch = nil
	}
	for {
		select {
		case <-s.stop:
			flush()
			return
		case e := <-s.auditQ:
			batch = append(batch, e)
			if len(batch) >= 256 {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// getAudit is GET /v1/audit?service=NAME&since=DURATION&limit=N.
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since int64
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return badRequest("since must be a duration such as 24h, got %q", v)
		}
		since = time.Now().Add(-d).UnixMilli()
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAudit {
			return badRequest("limit must be 1 to %d, got %q", maxAudit, v)
		}
		limit = n
	}
	service := q.Get("service")
	entries, dropped := s.State().AuditEntries(service, since, limit)
	// Entries about services the caller may not read are left out.
	out := entries[:0]
	for _, e := range entries {
		if e.Service == "" || canRead(r, acl.KindService, e.Service) {
			out = append(out, e)
		}
	}
	return writeJSON(w, http.StatusOK, api.AuditList{Entries: out, Dropped: dropped})
}
