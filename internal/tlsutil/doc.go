// Package tlsutil is dtk's mutual TLS: the cluster CA, the certificates it
// issues, and the run-time material of a process (a Store) with the TLS
// configurations built from it for the HTTP API, its clients and the Raft
// transport between coordinators.
//
// Every certificate names its holder in exactly one URI SAN of the form
// dtk://ROLE/NAME, where ROLE is server (a coordinator), client (an
// operator or a tool) or node (an agent). Peers are authorised by that
// identity, never by host name: a coordinator reached at any address is
// accepted when its certificate chains to the cluster CA, is valid for
// server authentication and says dtk://server/…; the same way Consul
// checks server.<dc> rather than the name that was dialled.
//
// A Store is reloadable (SIGHUP): the configurations it hands out pick the
// current CA pool and certificate at each handshake, so that a reload
// takes effect for new connections without dropping the established ones.
package tlsutil
