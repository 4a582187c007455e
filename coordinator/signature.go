package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/signing"
	"github.com/dtkhq/dtk/plan"
)

// Signed modules (docs/modules.md). A coordinator given trusted keys
// checks the signature (dtk.sig) of every module pushed or imported, and
// the signature of every bundle imported, before anything is recorded; it
// records who signed a module in the module (plan.Module.KeyID and
// SignedBy). The check runs where the write runs, on the leader, so the
// leader's trust decides: give every coordinator the same modules block.
// Modules recorded before are not checked again.

// ModuleTrust is the modules block: the keys a coordinator trusts, and
// whether it accepts only signed modules and bundles.
type ModuleTrust struct {
	Keys *signing.Keyring
	// Require refuses unsigned modules and bundles (403). Without it an
	// unsigned one is accepted; a signed one must still verify.
	Require bool
}

// active reports whether signatures are checked at all: without keys and
// without Require, a dtk.sig is not looked at.
func (t *ModuleTrust) active() bool { return t != nil && (t.Keys.Len() > 0 || t.Require) }

// SetModuleTrust replaces the trusted keys and the requirement (a SIGHUP
// that re-read modules.trusted_keys); nil checks no signatures. Requests
// under way finish with the trust they started with.
func (s *Server) SetModuleTrust(t *ModuleTrust) { s.trust.Store(t) }

// ModuleTrust is the trust in effect (nil: signatures are not checked).
func (s *Server) ModuleTrust() *ModuleTrust { return s.trust.Load() }

func (s *Server) moduleTrust() *ModuleTrust { return s.trust.Load() }

// moduleSig is what verifying a module needs once its scratch folder is
// gone: the trust it is checked against, its dtk.sig (nil when it has
// none) and the digest of every file in the archive.
type moduleSig struct {
	trust *ModuleTrust
	raw   []byte
	files map[string]string
	// bad is a dtk.sig that cannot be read as a file (a folder, too
	// large): refused as an invalid signature.
	bad string
}

// readModuleSig collects, from a module's scratch folder, what checking
// its signature needs; nil when trust checks nothing. The digests the
// loader computed (mod.Files) are reused; files it skips (under
// dot-folders) are hashed here, since the signature covers every file the
// archive carried.
func readModuleSig(dir string, mod *plan.Module, trust *ModuleTrust) (*moduleSig, error) {
	if !trust.active() {
		return nil, nil
	}
	ms := &moduleSig{trust: trust}
	p := filepath.Join(dir, signing.SigFile)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return ms, nil
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		ms.bad = signing.SigFile + " is not a file"
		return ms, nil
	case fi.Size() > signing.MaxSigBytes:
		ms.bad = fmt.Sprintf("%s is %d bytes, more than %d", signing.SigFile, fi.Size(), signing.MaxSigBytes)
		return ms, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	ms.raw, err = io.ReadAll(io.LimitReader(f, signing.MaxSigBytes+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	if ms.raw == nil {
		ms.raw = []byte{} // present but empty: malformed, not unsigned
	}
	if ms.files, err = signing.DirFiles(dir, mod.Files); err != nil {
		return nil, fmt.Errorf("module files: %w", err)
	}
	return ms, nil
}

// verifyModuleSig checks a parsed module's signature and records its
// signer in mod. Refusals: 403 for an unsigned module where signatures
// are required and for a key this coordinator does not trust, 422 for a
// signature that does not hold.
func (s *Server) verifyModuleSig(mod *plan.Module, ms *moduleSig) error {
	if ms == nil {
		return nil
	}
	ref := mod.Ref()
	if ms.bad != "" {
		return s.sigRefusal(http.StatusUnprocessableEntity, ref, "", "module %s: its signature does not hold: %s", ref, ms.bad)
	}
	if ms.raw == nil {
		if !ms.trust.Require {
			return nil
		}
		return s.sigRefusal(http.StatusForbidden, ref, "", "module %s is not signed, and this cluster accepts only signed modules (modules.require_signature): "+
			"sign it with dtkctl module sign DIR --key KEY.key and push it again", ref)
	}
	sig, err := signing.VerifyModule(ms.raw, mod.Name, mod.Version, ms.files, ms.trust.Keys)
	switch {
	case errors.Is(err, signing.ErrUntrusted):
		return s.sigRefusal(http.StatusForbidden, ref, sig.KeyID, "module %s is signed by %s, which this cluster does not trust (modules.trusted_keys): "+
			"sign it with a trusted key, or add its public key to modules.trusted_keys", ref, signing.Describe(sig.KeyID, sig.Signer))
	case err != nil:
		keyID := ""
		if sig != nil {
			keyID = sig.KeyID
		}
		return s.sigRefusal(http.StatusUnprocessableEntity, ref, keyID, "module %s: its signature does not hold: %v", ref, err)
	}
	mod.KeyID, mod.SignedBy = sig.KeyID, sig.Signer
	return nil
}

// verifyBundleSig checks an imported bundle's own signature (its
// manifest) against trust; the modules in it are checked one by one.
func (s *Server) verifyBundleSig(man *bundle.Manifest, trust *ModuleTrust) error {
	if !trust.active() {
		return nil
	}
	err := signing.VerifyManifest(man, trust.Keys)
	keyID := ""
	if man.Signature != nil {
		keyID = man.Signature.KeyID
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, signing.ErrUnsigned):
		if !trust.Require {
			return nil
		}
		return s.sigRefusal(http.StatusForbidden, "bundle", "", "the bundle is not signed, and this cluster accepts only signed bundles (modules.require_signature): "+
			"export it with dtkctl bundle export --sign-key KEY.key; nothing was imported")
	case errors.Is(err, signing.ErrUntrusted):
		return s.sigRefusal(http.StatusForbidden, "bundle", keyID, "the bundle is signed by %s, which this cluster does not trust (modules.trusted_keys); nothing was imported",
			signing.ManifestSigner(man))
	default:
		return s.sigRefusal(http.StatusUnprocessableEntity, "bundle", keyID, "%v; nothing was imported", err)
	}
}

// sigRefusal logs a refused signature and returns the answer.
func (s *Server) sigRefusal(code int, what, keyID, format string, args ...any) *api.APIError {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("signature refused", "code", code, "what", what, "key_id", keyID, "reason", msg)
	return &api.APIError{Code: code, Message: msg}
}
