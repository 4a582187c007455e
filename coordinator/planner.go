package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/plan"
)

// Planning on the leader.
//
// A deploy used to run the compiler inside Apply (DeployServiceType), on
// every voter and read replica, under the state's write lock; replaying an
// old entry with new code compiled it again. Now, as Nomad's plan applier
// does, the leader compiles against a consistent read of its state, outside
// the write lock, and commits the result (PlannedDeployType): the FSM only
// checks that nothing the compile read has changed since (CompileIndex) and
// stores the plan. A stale plan is rejected (ErrStalePlan) and the leader
// plans again, planTries times; then it falls back to the compile in Apply,
// so that a deploy under a write storm still lands.
//
// The leader commits planned deploys only once every coordinator in the
// Raft configuration advertises FeaturePlannedDeploy (its gossip tags):
// an older one would stop on the unknown entry.

// FeaturePlannedDeploy is the capability of applying PlannedDeployType.
const FeaturePlannedDeploy = "planned-deploy"

// features are the capabilities this coordinator advertises (gossip tag
// "features", comma-separated).
var features = []string{FeaturePlannedDeploy, FeaturePlannedRecompile, FeatureReportBatches}

// planTries bounds the plans a deploy commits before it falls back to the
// compile in Apply.
const planTries = 5

// ErrStalePlan answers a planned deploy compiled before an entry that
// changed what the compiler reads.
var ErrStalePlan = errors.New("stale plan")

// compileFn is the compiler (a test replaces it, to prove that a planned
// deploy applies without it).
var compileFn = plan.Compile

// PlannedDeployCmd is a deploy as the leader compiled it: the plan of
// Generation, or its violations, against the state as of CompileIndex.
type PlannedDeployCmd struct {
	DeployServiceCmd
	Generation   uint64 `json:"generation"`
	CompileIndex uint64 `json:"compile_index"`
	// ShapeIndex, once leader recompiles are on, is the precondition
	// instead of CompileIndex (recompile.go).
	ShapeIndex uint64          `json:"shape_index,omitempty"`
	Plan       *plan.Plan      `json:"plan,omitempty"`
	Violations plan.Violations `json:"violations,omitempty"`
}

// plannedDeploy stores a planned deploy as deployService would have
// compiled it, or rejects it as stale.
func (s *State) plannedDeploy(idx uint64, c *PlannedDeployCmd) (any, []string) {
	if !s.data.LeaderPlans {
		// CompileIndex is the same on every replica only from here: one
		// that restored a snapshot of an older version, or one taken
		// before this version applied the entries in it, has its own.
		// The first planned entry starts it and is planned again.
		s.data.LeaderPlans = true
		s.compileInputsChanged()
		return fmt.Errorf("%w: planning on the leader starts at index %d", ErrStalePlan, idx), nil
	}
	return s.deployServiceWith(idx, &c.DeployServiceCmd, func(svc *plan.Service, gen uint64) (*plan.Plan, plan.Violations, error) {
		if at, now, stale := s.staleLocked(c); stale || gen != c.Generation {
			return nil, nil, fmt.Errorf("%w: service %q was planned at index %d (generation %d); the compiler's inputs changed at %d", ErrStalePlan, svc.Name, at, c.Generation, now)
		}
		if s.data.CompileIndex != c.CompileIndex {
			// Only reports moved since the read: a recompile takes them in.
			s.mark(svc.Name)
		}
		if len(c.Violations) > 0 {
			return nil, c.Violations, nil
		}
		if c.Plan == nil {
			return nil, nil, fmt.Errorf("%w: planned deploy of %q without a plan", ErrInvalid, svc.Name)
		}
		return c.Plan, nil, nil
	})
}

// compileNeutral lists the entry types that change nothing the compiler
// reads, or mark it themselves (compileInputsChanged): reports converge
// steps and bring outputs, rollouts and reverts set plans (setPlan). Any
// other type, a future one included, moves CompileIndex; so does
// ResliceType, which follows a snapshot restore: a plan made before the
// restore is stale after it.
var compileNeutral = map[MessageType]bool{
	ReportsType: true, OpResultsType: true, OpResultsBatchType: true, CreateOpType: true,
	CoordinatorsType: true, LeaderType: true, AuditType: true, DataKeyType: true,
	CreateTokenType: true, DeleteTokenType: true, PendingType: true, PutCAType: true,
	ACLBootstrapType: true, ACLPolicyType: true, ACLDeletePolicyType: true, ACLTokenType: true, ACLDeleteTokenType: true,
	RolloutType: true, RolloutTickType: true, PlannedDeployType: true, RecompileType: true,
}

// compileIndex is the index of the last entry that changed what the
// compiler reads, as this replica has applied it.
func (s *State) compileIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.CompileIndex
}

// stale reports whether the planned deploy pc is already stale here.
func (s *State) stale(pc PlannedDeployCmd) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, _, stale := s.staleLocked(&pc)
	return stale
}

// staleLocked is the planned deploy's precondition: ShapeIndex once leader
// recompiles are on (reports since the read are then compiled in by a
// recompile), CompileIndex before. It returns the index the plan was read
// at and the state's.
func (s *State) staleLocked(pc *PlannedDeployCmd) (at, now uint64, stale bool) {
	if pc.ShapeIndex != 0 && s.data.LeaderRecompiles {
		return pc.ShapeIndex, s.data.ShapeIndex, s.data.ShapeIndex != pc.ShapeIndex
	}
	return pc.CompileIndex, s.data.CompileIndex, s.data.CompileIndex != pc.CompileIndex
}

// compileInputsChanged records that the running Apply changed something
// the compiler reads.
func (s *State) compileInputsChanged() {
	s.data.CompileIndex = s.at.index
	if s.data.LeaderRecompiles {
		s.data.ShapeIndex = s.at.index
	}
}

// reportInputsChanged records that a report changed something the
// compiler reads (a converged digest, an output): it moves CompileIndex but
// not ShapeIndex.
func (s *State) reportInputsChanged() { s.data.CompileIndex = s.at.index }

// PlanDeploy compiles the deploy c asks for against the state as it is:
// the entry that commits it. The compiler's input is taken under the read
// lock (the maps it reads are copied: Apply adds to them), and the compile
// runs without the lock. A service that is missing or being deleted is not
// compiled: the FSM answers as for DeployServiceCmd.
func (s *State) PlanDeploy(c DeployServiceCmd) PlannedDeployCmd {
	s.mu.RLock()
	pc := PlannedDeployCmd{DeployServiceCmd: c, CompileIndex: s.data.CompileIndex}
	if s.data.LeaderRecompiles {
		pc.ShapeIndex = s.data.ShapeIndex
	}
	svc := s.data.Services[c.Name]
	if svc == nil || svc.State == plan.StateDeleting {
		s.mu.RUnlock()
		return pc
	}
	pc.Generation = svc.Generation + 1
	if !s.data.LeaderPlans {
		// The first planned entry only turns planning on and is refused
		// (plannedDeploy): no use compiling and shipping a plan with it.
		s.mu.RUnlock()
		return pc
	}
	in := s.compileInput(svc, pc.Generation, nil)
	in.Modules, in.Outputs = maps.Clone(in.Modules), maps.Clone(in.Outputs)
	s.mu.RUnlock()
	pc.Plan, pc.Violations = compileFn(in)
	return pc
}

// applyDeploy commits a deploy: planned on this leader when every
// coordinator can apply it, else compiled in Apply.
func (s *Server) applyDeploy(c DeployServiceCmd) (any, error) {
	// A restore changes what the compiler reads (the service's removed
	// parts) in the same entry: it compiles in Apply, as it is rare.
	if c.Restore == nil && s.raft.State() == raft.Leader && s.clusterHas(FeaturePlannedDeploy) {
		for range planTries {
			pc := s.State().PlanDeploy(c)
			if pc.Plan != nil && s.State().stale(pc) {
				// Already stale here: plan again without committing a
				// plan the replicas would refuse.
				s.metrics.deployPlans.With("stale").Inc()
				continue
			}
			resp, err := s.apply(PlannedDeployType, pc)
			if !errors.Is(err, ErrStalePlan) {
				s.metrics.deployPlans.With("planned").Inc()
				return resp, err
			}
			s.metrics.deployPlans.With("stale").Inc()
			s.log.Debug("planned deploy was stale; planning again", "service", c.Name, "err", err)
		}
		s.log.Warn("planned deploy stale on every try; compiling in Apply", "service", c.Name, "tries", planTries)
	}
	s.metrics.deployPlans.With("in_apply").Inc()
	return s.apply(DeployServiceType, c)
}

// clusterHas reports whether every coordinator in the Raft configuration
// (voters and read replicas) advertises feature. One the gossip pool does
// not list, or lists without its tags, counts as without it.
func (s *Server) clusterHas(feature string) bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	has := map[string]bool{s.cfg.Name: slices.Contains(*s.features.Load(), feature)}
	if p := s.getPeers(); p != nil {
		for _, m := range p.Peers() {
			if m.Name != s.cfg.Name {
				has[m.Name] = slices.Contains(strings.Split(m.Features, ","), feature)
			}
		}
	}
	for _, srv := range f.Configuration().Servers {
		if !has[string(srv.ID)] {
			return false
		}
	}
	return true
}
