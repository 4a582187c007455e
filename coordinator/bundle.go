package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/bundle"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/plan"
)

// PutModulesCmd records several modules at once (a bundle import): all of
// them or, when any conflicts with a module already recorded under the
// same name@version with other content, none. Their blobs are stored
// already.
type PutModulesCmd struct {
	Modules []plan.Module `json:"modules"`
}

// PutModulesResult is the FSM's answer to PutModulesCmd: the refs
// (NAME@VERSION) recorded now and those that were recorded already with
// the same content.
type PutModulesResult struct {
	Added    []string
	Existing []string
}

// putModules applies PutModulesCmd atomically: every conflict is found
// before anything changes.
func (s *State) putModules(idx uint64, c *PutModulesCmd) (any, []string) {
	res := &PutModulesResult{}
	var conflicts []string
	batch := map[string]string{} // ref → digest within the command
	var add []plan.Module
	for _, m := range c.Modules {
		key := m.Ref()
		if d, ok := batch[key]; ok {
			if d != m.Digest {
				conflicts = append(conflicts, fmt.Sprintf("%s is listed twice with different content", key))
			}
			continue
		}
		batch[key] = m.Digest
		if old := s.data.Modules[key]; old != nil {
			if old.Digest == m.Digest {
				res.Existing = append(res.Existing, key)
			} else {
				conflicts = append(conflicts, fmt.Sprintf("%s is already pushed with other content (%s here, %s in the bundle)",
					key, shortDigest(old.Digest), shortDigest(m.Digest)))
			}
			continue
		}
		add = append(add, m)
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%w: %s; nothing was imported", ErrConflict, strings.Join(conflicts, "; ")), nil
	}
	for i := range add {
		m := add[i]
		s.data.Modules[m.Ref()] = &m
		res.Added = append(res.Added, m.Ref())
	}
	return res, nil
}

// importBundle is POST /v1/bundles: the body is a module bundle (see
// internal/bundle). The whole bundle is checked (manifest, every blob's
// size and digest, nothing extra, not truncated) and every module parsed
// before anything is kept; then the blobs go into the store, reach every
// live coordinator, and all the modules are recorded in one Raft entry.
// Modules already recorded with the same content are reported as existing;
// one recorded with other content refuses the whole import.
func (s *Server) importBundle(w http.ResponseWriter, r *http.Request) error {
	body := http.MaxBytesReader(w, r.Body, maxBundleBody)
	stage, err := os.MkdirTemp(s.blobs.dir, "bundle-*")
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	defer os.RemoveAll(stage)
	staged := map[string]string{} // digest → file in stage
	man, err := bundle.Read(body, func(digest string, size int64, r io.Reader) error {
		if s.blobs.Has(digest) {
			return nil // Read still checks the content
		}
		p := filepath.Join(stage, strings.TrimPrefix(digest, "sha256:"))
		if err := writeSynced(p, r); err != nil {
			return err
		}
		staged[digest] = p
		return nil
	})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, bundle.ErrInvalid) {
			return badRequest("%v; nothing was imported", err)
		}
		return fmt.Errorf("import bundle: %w; nothing was imported", err)
	}

	// The bundle's own signature, then every module: parsed, what the
	// manifest says, and signed as this coordinator requires.
	trust := s.moduleTrust()
	if err := s.verifyBundleSig(man, trust); err != nil {
		return err
	}
	mods := make([]plan.Module, 0, len(man.Modules))
	var conflicts []string
	allThere := true
	for _, e := range man.Modules {
		mod, sig, err := s.parseStaged(e, staged[e.Digest], trust)
		if err != nil {
			return err
		}
		if mod.Name != e.Name || mod.Version != e.Version {
			return badRequest("bundle: manifest.json lists %s but its archive %s is module %s; nothing was imported", e.Ref(), shortDigest(e.Digest), mod.Ref())
		}
		if err := s.verifyModuleSig(mod, sig); err != nil {
			var ae *api.APIError
			if errors.As(err, &ae) {
				return &api.APIError{Code: ae.Code, Message: "bundle " + ae.Message + "; nothing was imported"}
			}
			return err
		}
		mod.Digest, mod.Size = e.Digest, e.Size
		mods = append(mods, *mod)
		switch old := s.State().Module(e.Name, e.Version); {
		case old == nil:
			allThere = false
		case old.Digest != e.Digest:
			conflicts = append(conflicts, fmt.Sprintf("%s is already pushed with other content (%s here, %s in the bundle)",
				e.Ref(), shortDigest(old.Digest), shortDigest(e.Digest)))
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%w: %s; bump the version; nothing was imported", ErrConflict, strings.Join(conflicts, "; "))
	}
	// Checked: the blobs may go into the store (a recorded module whose
	// blob this coordinator lacked gets it back).
	for digest, p := range staged {
		if err := s.blobs.adopt(p, digest); err != nil {
			return err
		}
	}
	resp := api.BundleImportResponse{Imported: []bundle.Entry{}, Existing: []bundle.Entry{}}
	if allThere {
		// A re-import: nothing to commit.
		resp.Existing = append(resp.Existing, man.Modules...)
		resp.Index = s.State().Index()
		return writeJSON(w, http.StatusOK, resp)
	}
	// A quorum of coordinators holds the blobs before the modules are
	// recorded, as for a push.
	for _, e := range man.Modules {
		if err := s.replicateBlob(r.Context(), e.Digest); err != nil {
			return &api.APIError{Code: http.StatusServiceUnavailable, Message: err.Error() + "; nothing was imported; import again when the coordinators are reachable"}
		}
	}
	// The FSM decides again, atomically: a push that raced this import
	// still refuses all of it (its blobs then stay in the store,
	// unreferenced, like those of a refused push).
	out, err := s.apply(PutModulesType, PutModulesCmd{Modules: mods})
	if err != nil {
		return err
	}
	res, _ := out.(*PutModulesResult)
	if res == nil {
		return fmt.Errorf("import bundle: unexpected answer %T", out)
	}
	added := map[string]bool{}
	for _, ref := range res.Added {
		added[ref] = true
	}
	for _, e := range man.Modules {
		if added[e.Ref()] {
			resp.Imported = append(resp.Imported, e)
		} else {
			resp.Existing = append(resp.Existing, e)
		}
	}
	resp.Index = s.State().Index()
	s.log.Info("bundle imported", "imported", len(resp.Imported), "existing", len(resp.Existing))
	return writeJSON(w, http.StatusOK, resp)
}

// parseStaged parses a bundle module from its staged file, or from the
// store when the blob was there already.
func (s *Server) parseStaged(e bundle.Entry, path string, trust *ModuleTrust) (*plan.Module, *moduleSig, error) {
	if max := s.cfg.Limits.ModulePackedBytes; e.Size > max {
		return nil, nil, tooLarge(limits.KeyModulePackedBytes, "bundle module %s: its archive is larger than %s; nothing was imported", e.Ref(), limits.Size(max))
	}
	var mod *plan.Module
	var sig *moduleSig
	var err error
	if path == "" {
		mod, sig, err = s.loadModule(e.Digest, trust)
	} else {
		f, oerr := os.Open(path)
		if oerr != nil {
			return nil, nil, oerr
		}
		mod, sig, err = s.parseModule(f, trust)
		f.Close()
	}
	var derr *dsl.Error
	var ae *api.APIError
	switch {
	case errors.As(err, &derr):
		return nil, nil, &api.APIError{Code: http.StatusBadRequest, Message: fmt.Sprintf("bundle module %s is invalid here; nothing was imported:\n%s", e.Ref(), derr.Error()), Details: derr.Diagnostics()}
	case errors.As(err, &ae):
		return nil, nil, &api.APIError{Code: ae.Code, Message: fmt.Sprintf("bundle module %s: %s; nothing was imported", e.Ref(), ae.Message)}
	case err != nil:
		return nil, nil, fmt.Errorf("bundle module %s: %w", e.Ref(), err)
	}
	return mod, sig, nil
}

// writeSynced writes r to a new file at p and syncs it.
func writeSynced(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// adopt moves a file whose content is known to have digest into the store
// (on the same file system).
func (b *BlobStore) adopt(path, digest string) error {
	p, err := b.path(digest)
	if err != nil {
		return err
	}
	if err := os.Rename(path, p); err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}
