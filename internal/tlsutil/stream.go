package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds the TLS handshake of an accepted Raft connection,
// so that a peer that connects and says nothing does not hold it forever.
const handshakeTimeout = 10 * time.Second

// StreamLayer is the Raft transport over mutual TLS between coordinators:
// both ends must present a server certificate of the cluster CA. It
// implements raft.StreamLayer, for raft.NewNetworkTransportWithLogger.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	store     *Store
	log       *slog.Logger
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer listens on bindAddr (host:port). advertise is the address
// other coordinators dial; nil means the listener's, which must then not be
// an unspecified address such as 0.0.0.0.
func NewStreamLayer(bindAddr string, advertise net.Addr, s *Store, log *slog.Logger) (*StreamLayer, error) {
	if s == nil {
		return nil, errors.New("raft TLS: no TLS store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if id := s.Identity(); id.Role != RoleServer {
		// The other coordinators will refuse it; say why on this end too.
		log.Warn("raft TLS: this coordinator's certificate is not a server certificate; other coordinators will refuse it (dtk-agent tls cert create --server --name NAME)", "identity", id)
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: listen on %s: %w", bindAddr, err)
	}
	if advertise == nil {
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("raft TLS: bind address %s is not one other coordinators can dial; give an advertise address", bindAddr)
		}
	}
	return &StreamLayer{ln: ln, advertise: advertise, store: s, log: log}, nil
}

// Accept returns the next connection as a *tls.Conn whose handshake has
// not happened yet: it happens at the first Read or Write, in the
// connection's own goroutine, so that a slow peer does not hold up the
// accept loop. The handshake must end within handshakeTimeout.
func (l *StreamLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	return tls.Server(c, l.serverConfig(c)), nil
}

// serverConfig is the TLS configuration of one accepted connection: a
// client certificate is required and must be a coordinator's.
func (l *StreamLayer) serverConfig(raw net.Conn) *tls.Config {
	remote := raw.RemoteAddr().String()
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: l.store.getCertificate,
		// Verified in VerifyConnection against the current roots: the
		// static ClientCAs of RequireAndVerifyClientCert would not
		// follow a reload.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := l.store.VerifyPeer(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			if err == nil && id.Role != RoleServer {
				err = &peerError{ErrWrongRole, fmt.Sprintf("certificate is for %s, only coordinators (server) may join the Raft transport", id)}
			}
			if err != nil {
				l.log.Warn("raft connection refused", "remote", remote, "reason", err)
				return err
			}
			// Past the handshake the Raft transport manages its own
			// timeouts.
			return raw.SetDeadline(time.Time{})
		},
	}
}

// Close stops listening. Established connections are not affected.
func (l *StreamLayer) Close() error { return l.ln.Close() }

// Addr is the advertise address if one was given, else the listener's.
func (l *StreamLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	return l.ln.Addr()
}

// Dial connects to another coordinator and completes the TLS handshake
// within timeout (0: no limit). With TLS 1.3 a refusal of this end's
// certificate by the other end shows at the first Read, not here.
func (l *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS: dial %s: %w", address, err)
	}
	c := tls.Client(raw, l.store.ClientConfig())
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("raft TLS: handshake with %s: %w", address, err)
	}
	return c, nil
}
