package coordinator

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPTimeouts bound how long the API server gives a client. The server
// must not wait forever for a client that stopped (a frozen agent, a
// slowloris) but must not cut off what legitimately takes long: a
// long-poll's write deadline is extended by its wait (at most maxWait), and
// module uploads, blob downloads and snapshots get deadlines that grow with
// their size (minClientRate), or none at all for a snapshot download of
// unknown size, where HTTP/2 PINGs (serverPingInterval) still drop a
// client that stopped.
type HTTPTimeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request (headers and body).
	Read time.Duration
	// Write bounds handling a request and writing its answer, past a
	// long-poll's wait.
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultHTTPTimeouts are the shipped timeouts.
func DefaultHTTPTimeouts() HTTPTimeouts {
	return HTTPTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 2 * time.Minute}
}

// withDefaults fills the zero fields.
func (t HTTPTimeouts) withDefaults() HTTPTimeouts {
	d := DefaultHTTPTimeouts()
	if t.ReadHeader <= 0 {
		t.ReadHeader = d.ReadHeader
	}
	if t.Read <= 0 {
		t.Read = d.Read
	}
	if t.Write <= 0 {
		t.Write = d.Write
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	return t
}

// The API server PINGs a client connection that has sent nothing for
// serverPingInterval and closes it without an answer in serverPingTimeout:
// rarely, since it only reclaims what frozen clients hold (the clients
// PING the coordinators far more often to find a hung one quickly).
const (
	serverPingInterval = 30 * time.Second
	serverPingTimeout  = 15 * time.Second
)

// minClientRate is the slowest upload or download (bytes per second) the
// server waits for.
const minClientRate = 1 << 20

// transferTime is how long moving n bytes (n < 0: unknown, up to max) may
// take beyond the base timeout.
func transferTime(n, max int64) time.Duration {
	if n < 0 || n > max {
		n = max
	}
	return time.Duration(n/minClientRate) * time.Second
}

// extendDeadlines gives the requests that take long by design the time they
// need, overriding the server's Read and Write timeouts for this request
// only (http.ResponseController works for HTTP/1.1 and HTTP/2 alike).
func (s *Server) extendDeadlines(w http.ResponseWriter, r *http.Request) {
	t := s.cfg.HTTPTimeouts
	rc := http.NewResponseController(w)
	now := time.Now()
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (p == "/v1/modules" || p == "/v1/bundles"),
		r.Method == http.MethodPut && p == "/v1/operator/snapshot":
		// An upload: read it, then check, replicate and commit it.
		max := s.cfg.Limits.ModulePackedBytes
		switch p {
		case "/v1/bundles":
			max = maxBundleBody
		case "/v1/operator/snapshot":
			max = maxSnapshotBody
		}
		d := t.Read + transferTime(r.ContentLength, max)
		rc.SetReadDeadline(now.Add(d))
		rc.SetWriteDeadline(now.Add(d + t.Write))
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/debug/pprof/"):
		// A CPU profile or trace runs for ?seconds= (operator write only).
		secs, _ := strconv.Atoi(r.URL.Query().Get("seconds"))
		rc.SetWriteDeadline(now.Add(t.Write + time.Duration(max(secs, 0))*time.Second))
	case r.Method == http.MethodGet && (strings.HasPrefix(p, "/v1/blobs/") || p == "/v1/operator/snapshot"):
		// A download: getBlob sets a deadline once it knows the size.
		rc.SetWriteDeadline(time.Time{})
	case r.Method == http.MethodGet && r.URL.Query().Has("index"):
		// A long-poll (blockingParams bounds its wait).
		_, wait, err := blockingParams(r)
		if err != nil {
			wait = 0
		}
		rc.SetWriteDeadline(now.Add(wait + t.Write))
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		// A write on a follower may wait for an election (forwardWait)
		// before the leader runs it.
		rc.SetWriteDeadline(now.Add(forwardWait + t.Write))
	}
}
