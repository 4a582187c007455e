package coordinator

import (
	"net"
	"net/http"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// peerNet is how a coordinator calls other coordinators' HTTP APIs (leader
// forwarding, blob replication, status during bootstrap): over mutual TLS
// with its own server certificate when TLS is on.
type peerNet struct {
	scheme    string
	transport http.RoundTripper
	// forward has no overall timeout (each forwarded request carries a
	// context); blob allows large transfers; status is for quick probes.
	forward, blob, status *http.Client
}

func newPeerNet(store *tlsutil.Store) *peerNet {
	var t http.RoundTripper = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	scheme := "http"
	if store != nil {
		// New connections after a certificate reload (SIGHUP).
		scheme, t = "https", api.TLSHTTPClientFor(store).Transport
	}
	return &peerNet{
		scheme: scheme, transport: t,
		forward: &http.Client{Transport: t},
		blob:    &http.Client{Transport: t, Timeout: 10 * time.Minute},
		status:  &http.Client{Transport: t, Timeout: time.Second},
	}
}

// peerURL is the URL of path (with its query) on the coordinator at
// httpAddr.
func (s *Server) peerURL(httpAddr, pathQuery string) string {
	return s.pnet.scheme + "://" + httpAddr + pathQuery
}
