// Package modsource fetches module folders from where teams share them,
// besides a local folder: OCI registries (oci://REGISTRY/REPO:TAG, the
// artifact format of docs/modules.md) and git repositories
// (git::URL//PATH?ref=REF, go-getter's syntax). It also publishes a packed
// module to a registry.
//
// A source is only transport. What arrives is written to a folder the
// caller owns, file for file and byte for byte (dtk.sig included), and
// the caller then pushes that folder exactly as a local one: the
// coordinator checks and verifies it the same way whichever way it came.
// Nothing fetched is trusted: an artifact is checked for the dtk media
// types, bounded in size before it is downloaded, verified against its
// digest, and unpacked with internal/archive's safety checks and a
// coordinator's default limits; a git checkout must keep the module folder
// inside the clone (no symbolic link out of it).
package modsource
