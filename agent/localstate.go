package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/plan"
)

// localState is what the agent keeps between runs. The state file
// (agent-state.json, save) holds the slice; the step records, failed runs
// and record sequence live in the agent's database (records.go), where
// they are written with each step's report. Older agents kept those in the
// state file, and the report queue too: New moves them once.
type localState struct {
	// Slice is the last plan slice pulled, so the agent keeps converging
	// while no coordinator answers.
	Slice *plan.Slice `json:"slice,omitempty"`
	// Steps records each step's last successful run by step ID. A record
	// is never changed once stored here: a change stores a new one.
	Steps map[string]*stepRecord `json:"steps,omitempty"`
	// Queue held the reports not yet acknowledged, before the outbox
	// (store.go): read once to move them there.
	Queue []plan.Report `json:"queue,omitempty"`
	// Seq orders step records (Order); it only grows. Before the outbox
	// it numbered reports too.
	Seq uint64 `json:"seq,omitempty"`
	// Failed remembers steps whose last run failed (ID → digest#generation):
	// they are not retried until their plan changes or the service is
	// deployed again (a new generation).
	Failed map[string]string `json:"failed,omitempty"`
}

// stepRecord is the memory of a step's last success.
type stepRecord struct {
	Digest string `json:"digest"`
	// Generation the last report for this step named.
	ReportedGeneration uint64 `json:"reported_generation"`
	// What is needed to undo a create step when it leaves the plan.
	Service      string                     `json:"service"`
	Node         string                     `json:"node"`
	Instance     string                     `json:"instance"`
	Action       string                     `json:"action"`
	ModuleDigest string                     `json:"module_digest"`
	Undo         *plan.Action               `json:"undo,omitempty"`
	Attributes   map[string]json.RawMessage `json:"attributes,omitempty"`
	// Order is when the step first succeeded, so undos run newest first.
	Order uint64 `json:"order"`
	// Force is the step's Force when it last ran: a higher one in the
	// plan (deploy --force) runs it again, once.
	Force uint64 `json:"force,omitempty"`
	// Refresh lists the instances this step subscribes to that changed
	// since its last run: it runs its refresh action at its next turn.
	// Written with the changed step's record, so that a crash between
	// the two steps loses no refresh.
	Refresh []string `json:"refresh,omitempty"`
	// RefreshAction is the step's refresh action (subscribe) when it ran:
	// that action runs in a scratch folder of its own, removed with the
	// step's.
	RefreshAction string `json:"refresh_action,omitempty"`
}

func loadState(path string) (*localState, error) {
	st := &localState{Steps: map[string]*stepRecord{}, Failed: map[string]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	if secret.IsSealed(string(b)) {
		key, err := stateKey(filepath.Dir(path))
		if err != nil {
			return nil, err
		}
		if b, err = secret.Open(key, string(b), stateLabel); err != nil {
			return nil, fmt.Errorf("agent state %s cannot be opened with %s (move both aside to start afresh): %w", path, stateKeyFile, err)
		}
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("agent state %s is corrupt (move it aside to start afresh): %w", path, err)
	}
	if st.Steps == nil {
		st.Steps = map[string]*stepRecord{}
	}
	if st.Failed == nil {
		st.Failed = map[string]string{}
	}
	return st, nil
}

// The state file holds the cached slice (sensitive values included) and the
// attributes needed to undo steps: it is
// sealed (AES-256-GCM) with a key kept beside it, mode 0600, so that a copy
// of the state file alone (a backup, a support bundle) reveals nothing. The
// same key seals each report in the outbox (store.go).
const (
	stateKeyFile = "state.key"
	stateLabel   = "agent-state"
)

var stateKeys sync.Map // dir → []byte

// stateKey reads (or makes, the first time) the key of the state in dir.
func stateKey(dir string) ([]byte, error) {
	if k, ok := stateKeys.Load(dir); ok {
		return k.([]byte), nil
	}
	path := filepath.Join(dir, stateKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, gerr := secret.GenerateKey()
		if gerr != nil {
			return nil, gerr
		}
		if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("agent state key: %w", err)
		}
		b = []byte(k)
	} else if err != nil {
		return nil, fmt.Errorf("agent state key: %w", err)
	}
	key, err := secret.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("agent state key %s: %w", path, err)
	}
	stateKeys.Store(dir, key)
	return key, nil
}

// save writes the state file atomically (temp file, fsync, rename),
// sealed: the slice, and a report queue only if one is left to migrate.
// The step records are not in it: they are in the database.
func (st *localState) save(path string) error {
	b, err := json.Marshal(&localState{Slice: st.Slice, Queue: st.Queue})
	if err != nil {
		return err
	}
	key, err := stateKey(filepath.Dir(path))
	if err != nil {
		return err
	}
	sealed, err := secret.Seal(key, b, stateLabel)
	if err != nil {
		return fmt.Errorf("seal agent state: %w", err)
	}
	b = []byte(sealed)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
