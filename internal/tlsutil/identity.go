package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/dtkhq/dtk/internal/names"
)

// Role is what a certificate's holder is in the cluster.
type Role string

const (
	// RoleServer is a coordinator.
	RoleServer Role = "server"
	// RoleClient is an operator or a tool (dtkctl).
	RoleClient Role = "client"
	// RoleNode is an agent on a node.
	RoleNode Role = "node"
)

func (r Role) valid() bool { return r == RoleServer || r == RoleClient || r == RoleNode }

// identityScheme is the URI scheme of the SAN that carries an Identity.
const identityScheme = "dtk"

// Identity is who a certificate says its holder is. It is carried in one
// URI SAN "dtk://ROLE/NAME".
type Identity struct {
	Role Role
	Name string
}

// String is "ROLE/NAME", e.g. "node/web-1"; "" for the zero Identity.
func (i Identity) String() string {
	if i == (Identity{}) {
		return ""
	}
	return string(i.Role) + "/" + i.Name
}

// IsZero reports whether i is the zero Identity (no certificate).
func (i Identity) IsZero() bool { return i == Identity{} }

// URI is the SAN that carries i: dtk://ROLE/NAME.
func (i Identity) URI() *url.URL {
	return &url.URL{Scheme: identityScheme, Host: string(i.Role), Path: "/" + i.Name}
}

func (i Identity) validate() error {
	if !i.Role.valid() {
		return fmt.Errorf("unknown role %q (want server, client or node)", i.Role)
	}
	return checkName(i.Name)
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if !names.Valid(name) {
		return fmt.Errorf("invalid name %q: use 1 to 63 characters among a-z 0-9 _ . - starting with a letter or a digit", name)
	}
	return nil
}

// ParseIdentity parses "ROLE/NAME", the inverse of Identity.String.
func ParseIdentity(s string) (Identity, error) {
	role, name, ok := strings.Cut(s, "/")
	if !ok {
		return Identity{}, fmt.Errorf("identity %q: want ROLE/NAME, e.g. node/web-1", s)
	}
	id := Identity{Role: Role(role), Name: name}
	if err := id.validate(); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", s, err)
	}
	return id, nil
}

// IdentityOf reads the identity of cert from its dtk:// URI SAN. It fails
// when there is none, several, or a malformed one. Other URI SANs are
// ignored.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("no certificate")
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, identityScheme) {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q has no dtk:// identity (URI SAN); issue it with `dtk-agent tls cert create`", cert.Subject.CommonName)
	case 1:
	default:
		return Identity{}, fmt.Errorf("certificate %q has %d dtk:// identities, want one", cert.Subject.CommonName, len(found))
	}
	u := found[0]
	if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return Identity{}, fmt.Errorf("certificate %q: malformed identity %q, want dtk://ROLE/NAME", cert.Subject.CommonName, u)
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	if !ok || strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("certificate %q: malformed identity %q, want dtk://ROLE/NAME", cert.Subject.CommonName, u)
	}
	id := Identity{Role: Role(u.Host), Name: name}
	if err := id.validate(); err != nil {
		return Identity{}, fmt.Errorf("certificate %q: identity %q: %w", cert.Subject.CommonName, u, err)
	}
	return id, nil
}
