package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
)

// tlsCmd makes the cluster's TLS material: a CA, then certificates for
// coordinators (server), operators (client) and agents (node).
type tlsCmd struct {
	CA   tlsCACmd   `cmd:"" name:"ca" help:"Create the cluster CA and show its fingerprint."`
	Cert tlsCertCmd `cmd:"" name:"cert" help:"Issue certificates signed by the cluster CA."`
}

type tlsCACmd struct {
	Create      tlsCACreateCmd      `cmd:"" help:"Create the cluster CA: dtk-ca.pem and its key dtk-ca-key.pem."`
	Fingerprint tlsCAFingerprintCmd `cmd:"" help:"Print the SHA-256 fingerprint of a CA certificate (agents enroll with it)."`
}

type tlsCertCmd struct {
	Create tlsCertCreateCmd `cmd:"" help:"Issue a certificate and its key: exactly one of --server, --client or --node."`
}

const (
	caCertFile = "dtk-ca.pem"
	caKeyFile  = "dtk-ca-key.pem"
)

type tlsCACreateCmd struct {
	OutDir     string `help:"Folder to write the files in." default:"."`
	CommonName string `help:"Subject common name of the CA." default:"dtk cluster CA"`
	Days       int    `help:"Validity in days." default:"1825"`
	KeyType    string `help:"Key type: ecdsa (P-256) or ed25519." default:"ecdsa" enum:"ecdsa,ed25519"`
	Force      bool   `help:"Overwrite existing files."`
}

func (c *tlsCACreateCmd) Run(out io.Writer) error {
	if c.Days <= 0 {
		return usageError{fmt.Errorf("--days %d: give a positive number of days", c.Days)}
	}
	certPath, keyPath := filepath.Join(c.OutDir, caCertFile), filepath.Join(c.OutDir, caKeyFile)
	if err := refuseOverwrite(c.Force, certPath, keyPath); err != nil {
		return err
	}
	certPEM, keyPEM, err := tlsutil.CreateCA(tlsutil.CAOptions{
		CommonName: c.CommonName, Validity: days(c.Days), KeyType: tlsutil.KeyType(c.KeyType),
	})
	if err != nil {
		return err
	}
	// The key first: a certificate without its key is of no use.
	if err := tlsutil.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := tlsutil.WriteFile(certPath, certPEM, 0o644); err != nil {
		return err
	}
	ca, err := tlsutil.LoadCA(certPEM, keyPEM)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (the CA certificate: give it to every coordinator, agent and operator)\n", certPath)
	fmt.Fprintf(out, "wrote %s (the CA key: keep it secret and offline; it signs every certificate)\n", keyPath)
	fmt.Fprintf(out, "expires: %s\n", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "fingerprint: %s\n", tlsutil.Fingerprint(ca.Cert))
	return nil
}

type tlsCAFingerprintCmd struct {
	File string `arg:"" help:"CA certificate file (PEM)." type:"path"`
}

func (c *tlsCAFingerprintCmd) Run(out io.Writer) error {
	b, err := os.ReadFile(c.File)
	if err != nil {
		return usageError{err}
	}
	certs, err := tlsutil.ParseCertsPEM(b)
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", c.File, err)}
	}
	for _, cert := range certs {
		if len(certs) == 1 {
			fmt.Fprintln(out, tlsutil.Fingerprint(cert))
		} else {
			fmt.Fprintf(out, "%s  %s\n", tlsutil.Fingerprint(cert), cert.Subject.CommonName)
		}
	}
	return nil
}

type tlsCertCreateCmd struct {
	Server  bool     `help:"A coordinator's certificate (needs --name)."`
	Client  bool     `help:"An operator's or a tool's certificate (--name, default operator)."`
	Node    string   `help:"An agent's certificate, for the node named NODE." placeholder:"NODE"`
	Name    string   `help:"Name in the certificate's identity (with --server or --client)."`
	DNS     []string `help:"Extra DNS name (repeatable); server certificates always hold localhost." placeholder:"NAME"`
	IP      []string `help:"Extra IP address (repeatable); server certificates always hold 127.0.0.1." placeholder:"IP"`
	Days    int      `help:"Validity in days (never past the CA's)." default:"365"`
	CA      string   `help:"CA certificate." default:"dtk-ca.pem"`
	CAKey   string   `help:"CA key." default:"dtk-ca-key.pem" name:"ca-key"`
	OutDir  string   `help:"Folder to write the files in." default:"."`
	KeyType string   `help:"Key type: ecdsa (P-256) or ed25519." default:"ecdsa" enum:"ecdsa,ed25519"`
	Force   bool     `help:"Overwrite existing files."`
}

// identity is the role and name the flags ask for.
func (c *tlsCertCreateCmd) identity(given set) (tlsutil.Identity, error) {
	n := 0
	for _, b := range []bool{c.Server, c.Client, given["node"]} {
		if b {
			n++
		}
	}
	if n != 1 {
		return tlsutil.Identity{}, errors.New("give exactly one of --server, --client or --node NODE")
	}
	var id tlsutil.Identity
	switch {
	case c.Server:
		if c.Name == "" {
			return id, errors.New("--server needs --name: the coordinator's name, e.g. --name c1")
		}
		id = tlsutil.Identity{Role: tlsutil.RoleServer, Name: c.Name}
	case c.Client:
		name := c.Name
		if name == "" {
			name = "operator"
		}
		id = tlsutil.Identity{Role: tlsutil.RoleClient, Name: name}
	default:
		if c.Node == "" {
			return id, errors.New("--node needs the node's name, e.g. --node web-1")
		}
		if given["name"] {
			return id, errors.New("--name does not go with --node: the node's name is the value of --node")
		}
		id = tlsutil.Identity{Role: tlsutil.RoleNode, Name: c.Node}
	}
	// Validate the name the way the CA will.
	if _, err := tlsutil.ParseIdentity(id.String()); err != nil {
		return tlsutil.Identity{}, err
	}
	return id, nil
}

func (c *tlsCertCreateCmd) Run(out io.Writer, given set) error {
	id, err := c.identity(given)
	if err != nil {
		return usageError{err}
	}
	if c.Days <= 0 {
		return usageError{fmt.Errorf("--days %d: give a positive number of days", c.Days)}
	}
	var ips []net.IP
	for _, s := range c.IP {
		ip := net.ParseIP(s)
		if ip == nil {
			return usageError{fmt.Errorf("--ip %q is not an IP address", s)}
		}
		ips = append(ips, ip)
	}
	dns := c.DNS
	if id.Role == tlsutil.RoleServer {
		dns = appendMissing(dns, "localhost")
		if !containsIP(ips, net.IPv4(127, 0, 0, 1)) {
			ips = append(ips, net.IPv4(127, 0, 0, 1))
		}
	}
	base := string(id.Role) + "-" + id.Name
	certPath, keyPath := filepath.Join(c.OutDir, base+".pem"), filepath.Join(c.OutDir, base+"-key.pem")
	if err := refuseOverwrite(c.Force, certPath, keyPath); err != nil {
		return err
	}
	ca, err := c.loadCA()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue(tlsutil.CertOptions{
		Role: id.Role, Name: id.Name, DNSNames: dns, IPs: ips,
		Validity: days(c.Days), KeyType: tlsutil.KeyType(c.KeyType),
	})
	if err != nil {
		return err
	}
	if err := tlsutil.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := tlsutil.WriteFile(certPath, certPEM, 0o644); err != nil {
		return err
	}
	certs, err := tlsutil.ParseCertsPEM(certPEM)
	if err != nil {
		return err
	}
	leaf := certs[0]
	fmt.Fprintf(out, "wrote %s\n", certPath)
	fmt.Fprintf(out, "wrote %s (keep it secret)\n", keyPath)
	fmt.Fprintf(out, "identity: %s\n", id)
	if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 {
		fmt.Fprintf(out, "addresses: %s\n", addresses(leaf.DNSNames, leaf.IPAddresses))
	}
	fmt.Fprintf(out, "expires: %s\n", leaf.NotAfter.UTC().Format(time.RFC3339))
	if leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		fmt.Fprintf(out, "note: cut short to the CA's own expiry\n")
	}
	return nil
}

func (c *tlsCertCreateCmd) loadCA() (*tlsutil.CA, error) {
	certPEM, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, usageError{fmt.Errorf("CA certificate: %w (create the CA with `dtk-agent tls ca create`, or point --ca at it)", err)}
	}
	keyPEM, err := os.ReadFile(c.CAKey)
	if err != nil {
		return nil, usageError{fmt.Errorf("CA key: %w (point --ca-key at the key written by `dtk-agent tls ca create`)", err)}
	}
	ca, err := tlsutil.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s, %s: %w", c.CA, c.CAKey, err)}
	}
	return ca, nil
}

// refuseOverwrite fails (exit 2) if any of paths exists, unless force.
func refuseOverwrite(force bool, paths ...string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return usageError{fmt.Errorf("%s already exists; pass --force to overwrite it", p)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

func appendMissing(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, v := range ips {
		if v.Equal(ip) {
			return true
		}
	}
	return false
}

func addresses(dns []string, ips []net.IP) string {
	s := ""
	for _, d := range dns {
		s += d + " "
	}
	for _, ip := range ips {
		s += ip.String() + " "
	}
	return s[:len(s)-1]
}
