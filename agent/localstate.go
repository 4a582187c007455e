package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dtkhq/dtk/plan"
)

// localState is what the agent keeps in its data dir between runs.
type localState struct {
	// Slice is the last plan slice pulled, so the agent keeps converging
	// while no coordinator answers.
	Slice *plan.Slice `json:"slice,omitempty"`
	// Steps records each step's last successful run by step ID.
	Steps map[string]*stepRecord `json:"steps"`
	// Queue holds reports not yet acknowledged by a coordinator.
	Queue []plan.Report `json:"queue,omitempty"`
	// Seq numbers reports; it only grows.
	Seq uint64 `json:"seq"`
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

// save writes the state atomically: temp file, fsync, rename.
func (st *localState) save(path string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
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
