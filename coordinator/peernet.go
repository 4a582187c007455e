package coordinator

import (
	"net/http"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// peerNet is how a coordinator calls other coordinators' HTTP APIs (leader
// forwarding, blob replication, status during bootstrap): over mutual TLS
// with its own server certificate when TLS is on. It uses the agents'
// transport (api.NewTransport), so a peer that hangs is found by HTTP/2
// PINGs within seconds, and a peer that cannot be reached by the dial and
// handshake timeouts. No client has an overall timeout: each call carries
// its own deadline (a context, or an api.Watchdog for blob transfers,
// which may take as long as they keep moving).
type peerNet struct {
	scheme    string
	transport http.RoundTripper
	// forward and blob have no overall timeout; status is for quick
	// probes.
	forward, blob, status *http.Client
}

// Deadlines of calls between coordinators.
const (
	// peerAnswer bounds the wait for a peer's answer to start: a blob
	// fetch's first byte, a peer's "I hold it" for a blob it already has.
	peerAnswer = 5 * time.Second
	// peerIdle bounds a pause in a blob transfer between coordinators.
	peerIdle = 10 * time.Second
)

func newPeerNet(store *tlsutil.Store) *peerNet {
	tr := api.NewTransport(nil)
	tr.MaxIdleConnsPerHost = 16
	var t http.RoundTripper = tr
	scheme := "http"
	if store != nil {
		// New connections after a certificate reload (SIGHUP).
		scheme, t = "https", api.TLSHTTPClientFor(store).Transport
	}
	return &peerNet{
		scheme: scheme, transport: t,
		forward: &http.Client{Transport: t},
		blob:    &http.Client{Transport: t},
		status:  &http.Client{Transport: t, Timeout: time.Second},
	}
}

// peerURL is the URL of path (with its query) on the coordinator at
// httpAddr.
func (s *Server) peerURL(httpAddr, pathQuery string) string {
	return s.pnet.scheme + "://" + httpAddr + pathQuery
}
