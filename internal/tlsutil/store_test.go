package tlsutil

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTPS_ServerAndClientConfig(t *testing.T) {
	ca := newCA(t, CAOptions{})
	server := storeFor(t, ca, RoleServer, "c1")
	client := storeFor(t, ca, RoleClient, "operator")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: server.ServerConfig(),
		ErrorLog:  log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := server.VerifyPeer(r.TLS.PeerCertificates, x509.ExtKeyUsageClientAuth)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			fmt.Fprintf(w, "%s %s", r.Proto, id)
		}),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	get := func(cfg *tls.Config) (string, error) {
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
	}
	if got, err := get(client.ClientConfig()); err != nil || got != "200 HTTP/2.0 client/operator" {
		t.Errorf("with a client certificate: %q, %v", got, err)
	}

	// A client without a certificate (CA only) still verifies the server.
	anon, err := NewStoreFromPEM(ca.CertPEM, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(anon.ClientConfig()); err != nil || !strings.HasPrefix(got, "401 no certificate presented") {
		t.Errorf("without a certificate: %q, %v", got, err)
	}
	if !anon.Identity().IsZero() || anon.Leaf() != nil {
		t.Errorf("CA-only store has identity %v", anon.Identity())
	}

	// A client of another cluster refuses this server.
	other := storeFor(t, newCA(t, CAOptions{}), RoleClient, "operator")
	_, err = get(other.ClientConfig())
	wantIs(t, err, ErrUnknownAuthority)
}

func TestServerChainHoldsTheCA(t *testing.T) {
	ca := newCA(t, CAOptions{})
	s := storeFor(t, ca, RoleServer, "c1")
	c, err := s.ServerConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 || !bytes.Equal(c.Certificate[1], ca.Cert.Raw) {
		t.Errorf("chain of %d certificates, want [leaf, CA]", len(c.Certificate))
	}
}

func TestVerifyPeer_Errors(t *testing.T) {
	ca := newCA(t, CAOptions{})
	s := storeFor(t, ca, RoleServer, "c1")

	_, err := s.VerifyPeer(nil, x509.ExtKeyUsageClientAuth)
	wantIs(t, err, ErrNoCertificate)

	other := newCA(t, CAOptions{CommonName: "another CA"})
	foreign, _ := issue(t, other, CertOptions{Role: RoleNode, Name: "web-1"})
	_, err = s.VerifyPeer([]*x509.Certificate{leafOf(t, foreign)}, x509.ExtKeyUsageClientAuth)
	wantIs(t, err, ErrUnknownAuthority)
	if !strings.Contains(err.Error(), "certificate is not signed by this cluster's CA") || !strings.Contains(err.Error(), "another CA") {
		t.Errorf("message %q", err)
	}

	old, _ := issue(t, ca, CertOptions{Role: RoleNode, Name: "web-1", NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour})
	_, err = s.VerifyPeer([]*x509.Certificate{leafOf(t, old)}, x509.ExtKeyUsageClientAuth)
	wantIs(t, err, ErrExpired)
	if !strings.Contains(err.Error(), "certificate expired at ") || !strings.Contains(err.Error(), "node/web-1") {
		t.Errorf("message %q", err)
	}

	future, _ := issue(t, ca, CertOptions{Role: RoleNode, Name: "web-1", NotBefore: time.Now().Add(time.Hour)})
	_, err = s.VerifyPeer([]*x509.Certificate{leafOf(t, future)}, x509.ExtKeyUsageClientAuth)
	wantIs(t, err, ErrExpired)
	if !strings.Contains(err.Error(), "not valid before") {
		t.Errorf("message %q", err)
	}

	node, _ := issue(t, ca, CertOptions{Role: RoleNode, Name: "web-1"})
	_, err = s.VerifyPeer([]*x509.Certificate{leafOf(t, node)}, x509.ExtKeyUsageServerAuth)
	wantIs(t, err, ErrWrongUsage)

	id, err := s.VerifyPeer([]*x509.Certificate{leafOf(t, node)}, x509.ExtKeyUsageClientAuth)
	if err != nil || id.String() != "node/web-1" {
		t.Errorf("valid node certificate: %v, %v", id, err)
	}
}

func TestClientRefusesNonServerCertificate(t *testing.T) {
	ca := newCA(t, CAOptions{})
	node := storeFor(t, ca, RoleNode, "web-1")
	client := storeFor(t, ca, RoleClient, "operator")
	_, cerr, _ := handshake(t, node.ServerConfig(), client.ClientConfig())
	wantIs(t, cerr, ErrWrongUsage)
	if !strings.Contains(cerr.Error(), "server certificate refused") {
		t.Errorf("message %q", cerr)
	}
}

func TestNewStore_ErrorsNameTheFile(t *testing.T) {
	ca := newCA(t, CAOptions{})
	certPEM, keyPEM := issue(t, ca, CertOptions{Role: RoleServer, Name: "c1"})
	_, otherKey := issue(t, ca, CertOptions{Role: RoleServer, Name: "c1"})
	foreign, foreignKey := issue(t, newCA(t, CAOptions{}), CertOptions{Role: RoleServer, Name: "c1"})
	expired, expiredKey := issue(t, ca, CertOptions{Role: RoleServer, Name: "c1", NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})

	// want is the message expected, from the three file names.
	cases := []struct {
		name          string
		ca, cert, key []byte
		want          func(caF, certF, keyF string) string
	}{
		{"missing CA", nil, certPEM, keyPEM, func(ca, _, _ string) string { return "CA file " + ca + " does not exist" }},
		{"CA not PEM", []byte("garbage"), certPEM, keyPEM, func(ca, _, _ string) string { return "CA file " + ca + ": not PEM" }},
		{"CA is a leaf", certPEM, certPEM, keyPEM, func(ca, _, _ string) string {
			return "CA file " + ca + ": certificate 1: certificate \"c1\" is not a CA"
		}},
		{"missing cert", ca.CertPEM, nil, keyPEM, func(_, cert, _ string) string { return "certificate file " + cert + " does not exist" }},
		{"cert not PEM", ca.CertPEM, []byte("x"), keyPEM, func(_, cert, _ string) string { return "certificate file " + cert + ": not PEM" }},
		{"key not PEM", ca.CertPEM, certPEM, []byte("x"), func(_, _, key string) string { return "key file " + key + ": not PEM" }},
		{"key mismatch", ca.CertPEM, certPEM, otherKey, func(_, cert, key string) string {
			return "key file " + key + " does not match the certificate in certificate file " + cert
		}},
		{"other CA", ca.CertPEM, foreign, foreignKey, func(ca, cert, _ string) string {
			return "certificate file " + cert + ": certificate server/c1 is not signed by any CA in CA file " + ca
		}},
		{"expired", ca.CertPEM, expired, expiredKey, func(_, cert, _ string) string { return "certificate file " + cert + ": certificate expired at " }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caF, certF, keyF := tempPaths(t)
			files := map[string][]byte{}
			for p, b := range map[string][]byte{caF: tc.ca, certF: tc.cert, keyF: tc.key} {
				if b != nil {
					files[p] = b
				}
			}
			writeFiles(t, files)
			_, err := NewStore(caF, certF, keyF)
			if want := tc.want(caF, certF, keyF); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want one saying %q", err, want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	caF, certF, keyF := tempPaths(t)
	ca1 := newCA(t, CAOptions{CommonName: "CA one"})
	cert1, key1 := issue(t, ca1, CertOptions{Role: RoleServer, Name: "c1"})
	writeFiles(t, map[string][]byte{caF: ca1.CertPEM, certF: cert1, keyF: key1})
	s, err := NewStore(caF, certF, keyF)
	if err != nil {
		t.Fatal(err)
	}
	if s.Generation() != 1 || s.Identity().String() != "server/c1" {
		t.Fatalf("generation %d, identity %v", s.Generation(), s.Identity())
	}

	// A connection made before the reload survives it.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	dial := func(client *Store) (*tls.Conn, error) {
		d := tls.Dialer{Config: client.ClientConfig()}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return c.(*tls.Conn), nil
	}
	echo := func(c *tls.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		_, err := io.ReadFull(c, b)
		return err
	}
	client1 := storeFor(t, ca1, RoleClient, "operator")
	before, err := dial(client1)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	ca2 := newCA(t, CAOptions{CommonName: "CA two"})
	cert2, key2 := issue(t, ca2, CertOptions{Role: RoleServer, Name: "c2"})
	writeFiles(t, map[string][]byte{caF: ca2.CertPEM, certF: cert2, keyF: key2})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Generation() != 2 || s.Identity().String() != "server/c2" || !bytes.Equal(s.CAPEM(), ca2.CertPEM) {
		t.Fatalf("after reload: generation %d, identity %v", s.Generation(), s.Identity())
	}
	if err := echo(before); err != nil {
		t.Errorf("connection from before the reload: %v", err)
	}
	client2 := storeFor(t, ca2, RoleClient, "operator")
	c, err := dial(client2)
	if err != nil {
		t.Fatalf("handshake with the new CA: %v", err)
	}
	if id, _ := IdentityOf(c.ConnectionState().PeerCertificates[0]); id.Name != "c2" {
		t.Errorf("server presented %v after reload", id)
	}
	c.Close()
	if _, err := dial(client1); err == nil {
		t.Error("a client of the old CA still trusts the reloaded server")
	}

	// A failed reload keeps the current material.
	writeFiles(t, map[string][]byte{certF: []byte("garbage")})
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), certF) {
		t.Fatalf("reload of garbage: %v", err)
	}
	if s.Generation() != 2 || s.Identity().String() != "server/c2" {
		t.Errorf("failed reload changed the store: generation %d, identity %v", s.Generation(), s.Identity())
	}
	c, err = dial(client2)
	if err != nil {
		t.Fatalf("handshake after a failed reload: %v", err)
	}
	c.Close()
}
