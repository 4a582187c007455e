package coordinator

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// forgetNode drops a node and everything kept for it (its indexes and
// report sequence), and takes it out of every plan: a live service is
// compiled again without it (a node block moves to another matching agent,
// a node group shrinks) — by the leader once leader recompiles are on, in
// Apply before — and a service being deleted stops waiting for it.
// Watchers of the node (its long-polls) wake and find it gone.
func (s *State) forgetNode(idx uint64, name string) []string {
	if n := s.data.Nodes[name]; n != nil && n.Incarnation != "" {
		delete(s.data.NodeSeq, seqKey(name, n.Incarnation))
	}
	delete(s.data.Nodes, name)
	delete(s.data.SliceIndex, name)
	delete(s.data.OpsIndex, name)
	delete(s.data.NodeSeq, name)
	keys := []string{nodeKey(name), nodeOpsKey(name)}
	for _, svcName := range sortedKeys(s.data.Services) {
		svc := s.data.Services[svcName]
		if svc.Plan == nil || !planHasAgent(svc.Plan, name) {
			continue
		}
		svc = s.ownService(svcName)
		var next *plan.Plan
		switch {
		case svc.State == plan.StateDeleting:
		case s.data.LeaderRecompiles:
			// The node's part goes now; the leader places its blocks
			// again (recompile.go).
			s.mark(svcName)
		default:
			if p, viol := s.compile(svc, svc.Generation); viol == nil {
				next = withoutAgent(withRemovals(svc.Plan, p, svc.Generation), name)
			}
		}
		if next == nil {
			// Being deleted, or no longer compiling without the node
			// (a node block no other agent matches): the node's part goes.
			next = withoutAgent(svc.Plan, name)
		}
		for _, np := range svc.Plan.Nodes {
			if np.Agent != name {
				continue
			}
			for _, st := range np.Steps {
				delete(s.data.Reports, st.ID)
				delete(s.data.Outputs, st.ID)
			}
		}
		keys = append(keys, s.setPlan(idx, svc, next)...)
		s.refreshState(svc)
		if svc.State == plan.StateDeleting && !svc.DeleteRecursive && isDeletePlan(svc.Plan) && s.deleteDone(svc) {
			s.removeService(idx, svc, &keys)
		} else {
			s.trackService(svc)
		}
	}
	// setPlan moved the forgotten node's slice index: drop it again.
	delete(s.data.SliceIndex, name)
	return keys
}

func planHasAgent(p *plan.Plan, agent string) bool {
	for _, np := range p.Nodes {
		if np.Agent == agent {
			return true
		}
	}
	return false
}

// withoutAgent is a copy of p without the agent's node plans.
func withoutAgent(p *plan.Plan, agent string) *plan.Plan {
	cp := *p
	cp.Nodes = nil
	for _, np := range p.Nodes {
		if np.Agent != agent {
			cp.Nodes = append(cp.Nodes, np)
		}
	}
	return &cp
}

// DeleteModuleCmd deletes one version of a module.
type DeleteModuleCmd struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// deleteModule forgets name@version, refused while a service uses it: staged
// or deployed from it, pinned to it by a lock, or with steps (a delete in
// progress, say) that still run its assets.
func (s *State) deleteModule(idx uint64, c *DeleteModuleCmd) (any, []string) {
	key := c.Name + "@" + c.Version
	m := s.data.Modules[key]
	if m == nil {
		return fmt.Errorf("%w: module %s", ErrNotFound, key), nil
	}
	var users []string
	for _, name := range sortedKeys(s.data.Services) {
		svc := s.data.Services[name]
		if (svc.Module == c.Name && svc.Version == c.Version) || svc.Lock[c.Name] == c.Version || planUsesDigest(svc.Plan, m.Digest) {
			users = append(users, name)
		}
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: module %s is used by service(s) %s; upgrade or delete them first", ErrConflict, key, strings.Join(users, ", ")), nil
	}
	delete(s.data.Modules, key)
	return m, []string{"module/" + key}
}

func planUsesDigest(p *plan.Plan, digest string) bool {
	if p == nil || digest == "" {
		return false
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if st.ModuleDigest == digest {
				return true
			}
		}
	}
	return false
}

func (s *Server) deleteModule(w http.ResponseWriter, r *http.Request) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := checkName("module", name); err != nil {
		return err
	}
	resp, err := s.apply(DeleteModuleType, DeleteModuleCmd{Name: name, Version: version})
	if err != nil {
		return err
	}
	s.log.Info("module deleted", "module", name+"@"+version, "by", callerOf(r).String())
	return writeJSON(w, http.StatusOK, resp)
}

// blobGrace is how old an unreferenced blob must be before it is collected:
// a push stores its blob before the module entry commits, and a bundle
// import stages files, so young files may be on their way to a reference.
const blobGrace = time.Hour

// blobGCEvery is how often each coordinator collects its blob store.
const blobGCEvery = 10 * time.Minute

// collectBlobs deletes blobs no module references (the archives of deleted
// module versions, of refused pushes that a crash left behind) and stale
// upload and bundle staging files, once they are older than grace. Each
// coordinator collects its own store.
func (s *Server) collectBlobs(grace time.Duration) (removed int) {
	keep := map[string]bool{}
	for _, m := range s.State().Modules() {
		if h, ok := strings.CutPrefix(m.Digest, "sha256:"); ok {
			keep[h] = true
		}
	}
	cutoff := time.Now().Add(-grace)
	old := func(p string) bool {
		fi, err := os.Lstat(p)
		return err == nil && fi.ModTime().Before(cutoff)
	}
	dir := filepath.Join(s.blobs.dir, "sha256")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if keep[e.Name()] || !old(p) {
			continue
		}
		if err := os.Remove(p); err == nil {
			removed++
		}
	}
	staging, _ := os.ReadDir(s.blobs.dir)
	for _, e := range staging {
		p := filepath.Join(s.blobs.dir, e.Name())
		if (strings.HasPrefix(e.Name(), "upload-") || strings.HasPrefix(e.Name(), "bundle-")) && old(p) {
			if os.RemoveAll(p) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		s.log.Info("collected unreferenced blobs", "removed", removed)
	}
	return removed
}
