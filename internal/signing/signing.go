// Package signing signs modules and bundles with Ed25519 keys made
// offline, and verifies them against a set of trusted public keys.
//
// A module's signature is the file dtk.sig at the root of the module
// folder, so it travels with the folder and its archive through every
// transport (push, bundle, OCI registry, git). It is JSON:
//
//	{
//	  "version": 1,
//	  "key_id": "3f9a0c2d1e4b5a67",
//	  "signer": "Alice <alice@example.com>",
//	  "algorithm": "ed25519",
//	  "module": "web",
//	  "module_version": "1.2.0",
//	  "signed_at": "2026-11-27T12:00:00Z",
//	  "files": {"main.hcl": "sha256:...", ...},
//	  "signature": "base64 of the 64-byte Ed25519 signature"
//	}
//
// files lists every file of the module but dtk.sig itself; verifying
// recomputes the digests and wants exactly that set: no file added,
// removed or changed. The signature is over the canonical payload (see
// payload): a fixed first line naming what is signed, then every other
// field as compact JSON with sorted keys.
//
// A bundle's signature sits in its manifest (internal/bundle) and covers
// the manifest: every module's name, version, archive digest and size. A
// signed bundle is format_version 2, which older readers refuse by name.
//
// Keys are Ed25519 from Go's standard library: no dependency, no network
// (keys are made and used offline), and signatures are deterministic (the
// same key and payload give the same bytes; no random source at signing
// time). Key files are PEM (PKCS #8 and PKIX) with a few lines of text
// before the block, which OpenSSL reads as they are.
package signing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Algorithm is the only signature algorithm.
const Algorithm = "ed25519"

// The kinds of verification failure, for errors.Is: the caller decides
// what each means (a coordinator answers ErrUnsigned and ErrUntrusted with
// 403 and ErrInvalid with 422).
var (
	// ErrUnsigned: there is no signature.
	ErrUnsigned = errors.New("not signed")
	// ErrUntrusted: the signature names a key that is not trusted.
	ErrUntrusted = errors.New("signed by an untrusted key")
	// ErrInvalid: the signature does not hold: malformed, altered, for
	// another module, or over other files.
	ErrInvalid = errors.New("invalid signature")
)

// Error is a verification failure: Kind is one of the errors above, for
// errors.Is; the message says what is wrong and what to do.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, e.Kind) hold.
func (e *Error) Unwrap() error { return e.Kind }

func failure(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// payload is what a signature covers: the line "dtk-NAME-signature-v1"
// (so that a module's signature is never taken for a bundle's), then the
// fields as compact JSON, keys sorted by their bytes, strings with only
// '"' and '\' escaped: checkText keeps control characters, U+2028, U+2029
// and invalid UTF-8, which JSON encoders escape differently, out of every
// string.
func payload(kind string, fields map[string]any) []byte {
	var b bytes.Buffer
	b.WriteString("dtk-" + kind + "-signature-v1\n")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		panic("signing: encode payload: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// checkText refuses what would make the canonical encoding ambiguous
// between JSON encoders, or a message or table unreadable.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) {
		return fmt.Errorf("%s %q holds a control character or line separator", what, s)
	}
	return nil
}

// checkKeyID checks the form of a key id: 16 lowercase hex digits.
func checkKeyID(id string) error {
	if len(id) != KeyIDLen {
		return fmt.Errorf("key_id %q is not %d hex digits", id, KeyIDLen)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("key_id %q is not %d lowercase hex digits", id, KeyIDLen)
		}
	}
	return nil
}

// signerNote is " (SIGNER)" or "".
func signerNote(signer string) string {
	if signer == "" {
		return ""
	}
	return " (" + signer + ")"
}

// Describe names a key and its signer for messages: "key 3f9a0c2d1e4b5a67
// (Alice <alice@example.com>)".
func Describe(keyID, signer string) string { return "key " + keyID + signerNote(signer) }
