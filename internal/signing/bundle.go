package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"time"

	"github.com/dtkhq/dtk/internal/bundle"
)

// manifestPayload is what a bundle's signature covers:
// "dtk-bundle-signature-v1\n" and the manifest's fields (created as RFC
// 3339 with the fractions of a second the manifest writes) with the
// signature's own but its bytes.
func manifestPayload(m *bundle.Manifest) []byte {
	mods := make([]any, 0, len(m.Modules))
	for _, e := range m.Modules {
		mods = append(mods, map[string]any{"name": e.Name, "version": e.Version, "digest": e.Digest, "size": e.Size})
	}
	s := m.Signature
	return payload("bundle", map[string]any{
		"format": m.Format, "format_version": m.FormatVersion, "created": m.Created.Format(time.RFC3339Nano),
		"created_by": m.CreatedBy, "modules": mods,
		"key_id": s.KeyID, "signer": s.Signer, "algorithm": s.Algorithm, "signed_at": s.SignedAt,
	})
}

// SignManifest signs m with k (signer "" takes the key's), making it a
// signed manifest (format_version 2). Change nothing in m afterwards;
// a zero Created becomes at.
func SignManifest(m *bundle.Manifest, k *PrivateKey, signer string, at time.Time) error {
	if signer == "" {
		signer = k.Signer
	}
	if err := checkText("signer", signer); err != nil {
		return err
	}
	if err := checkText("created_by", m.CreatedBy); err != nil {
		return err
	}
	if m.Created.IsZero() {
		m.Created = at.UTC()
	}
	if m.Modules == nil {
		m.Modules = []bundle.Entry{}
	}
	// Checked as the unsigned manifest it is until signed.
	m.Format, m.FormatVersion, m.Signature = bundle.Format, bundle.FormatVersion, nil
	if err := m.Check(); err != nil {
		return err
	}
	m.FormatVersion = bundle.FormatVersionSigned
	m.Signature = &bundle.Signature{KeyID: k.id, Signer: signer, Algorithm: Algorithm, SignedAt: at.UTC().Format(time.RFC3339)}
	m.Signature.Signature = base64.StdEncoding.EncodeToString(k.sign(manifestPayload(m)))
	return nil
}

// VerifyManifest checks a bundle manifest's signature against keys: it is
// there (ErrUnsigned), well-formed, by a key in keys (ErrUntrusted), and
// holds (ErrInvalid). The module archives are covered through their
// digests, which bundle.Read checks.
func VerifyManifest(m *bundle.Manifest, keys *Keyring) error {
	s := m.Signature
	if s == nil {
		return failure(ErrUnsigned, "the bundle is not signed")
	}
	if err := checkKeyID(s.KeyID); err != nil {
		return failure(ErrInvalid, "the bundle's signature is malformed: %v", err)
	}
	if s.Algorithm != Algorithm {
		return failure(ErrInvalid, "the bundle's signature uses algorithm %q; only %q is supported", s.Algorithm, Algorithm)
	}
	if _, err := time.Parse(time.RFC3339, s.SignedAt); err != nil {
		return failure(ErrInvalid, "the bundle's signature is malformed: signed_at %q is not an RFC 3339 time", s.SignedAt)
	}
	for what, v := range map[string]string{"signer": s.Signer, "created_by": m.CreatedBy} {
		if err := checkText(what, v); err != nil {
			return failure(ErrInvalid, "the bundle's signature is malformed: %v", err)
		}
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return failure(ErrInvalid, "the bundle's signature is not the base64 of a %d-byte Ed25519 signature", ed25519.SignatureSize)
	}
	candidates := keys.lookup(s.KeyID)
	if len(candidates) == 0 {
		return failure(ErrUntrusted, "the bundle is signed by %s, which is not a trusted key", Describe(s.KeyID, s.Signer))
	}
	p := manifestPayload(m)
	for _, k := range candidates {
		if k.verify(p, sig) {
			return nil
		}
	}
	return failure(ErrInvalid, "the bundle's signature does not verify with %s: its manifest was changed after it was signed", Describe(s.KeyID, s.Signer))
}

// ManifestSigner describes who signed a manifest, for messages: "key
// 3f9a0c2d1e4b5a67 (Alice)", or "" when it is not signed.
func ManifestSigner(m *bundle.Manifest) string {
	if m.Signature == nil {
		return ""
	}
	return Describe(m.Signature.KeyID, m.Signature.Signer)
}
