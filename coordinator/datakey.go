package coordinator

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/secret"
)

// Encryption at rest of the replicated state. Once the cluster has a data
// key, every Raft log entry the leader writes is sealed with it (AES-256-GCM),
// and so is every snapshot (Raft's own and `operator snapshot save`): raft.db
// and snapshot files hold no value in clear, sensitive ones included. The
// data key itself is in the state sealed with the coordinators' key-encryption
// key (keyring_file), so a snapshot restored into another cluster needs that
// key too. The state in memory is clear: coordinators compile plans and serve
// each agent its slice from it.
//
// Every coordinator must have the same keyring_file: one that cannot open the
// data key cannot apply the log, and stops with a message saying so (as it
// would on a corrupt log) rather than diverge.

// SealedEntryType is the type byte of a log entry sealed with the data
// key; the sealed bytes are a whole entry (type byte and payload).
const SealedEntryType MessageType = 127

// Labels bind sealed bytes to their use.
const (
	dataKeyLabel  = "cluster-data-key"
	entryLabel    = "raft-entry"
	snapshotLabel = "state-snapshot"
)

// DataKeyCmd stores the cluster's data key, sealed with the KEK. It is set
// once and never replaced.
type DataKeyCmd struct {
	Sealed string `json:"sealed"`
}

// dataKeys is the FSM's view of the keys: the KEK this coordinator was
// given and the data key once the state holds it.
type dataKeys struct {
	mu   sync.RWMutex
	kek  []byte
	data []byte
}

func (k *dataKeys) get() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.data
}

// open unseals the data key with the KEK.
func (k *dataKeys) open(sealed string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kek) == 0 {
		return errors.New("the cluster seals its state with a data key and this coordinator has no keyring_file: give it the same keyring_file as the other coordinators")
	}
	b, err := secret.Open(k.kek, sealed, dataKeyLabel)
	if err != nil {
		return fmt.Errorf("open the cluster data key (is keyring_file the same as on the other coordinators?): %w", err)
	}
	k.data = b
	return nil
}

// SetKEK gives the FSM the key-encryption key (before Raft starts).
func (f *FSM) SetKEK(kek []byte) {
	f.keys.mu.Lock()
	f.keys.kek = kek
	f.keys.mu.Unlock()
}

func (s *State) putDataKey(idx uint64, c *DataKeyCmd, keys *dataKeys) (any, []string) {
	if s.data.DataKey != "" {
		return nil, nil // set once; a second proposal (two leaders in turn) is ignored
	}
	if err := keys.open(c.Sealed); err != nil {
		panic("fsm: " + err.Error())
	}
	s.data.DataKey = c.Sealed
	return nil, nil
}

// unsealEntry opens a sealed log entry: the entry inside.
func (f *FSM) unsealEntry(buf []byte, idx uint64) []byte {
	key := f.keys.get()
	if key == nil {
		panic(fmt.Sprintf("fsm: log entry %d is sealed but this coordinator has no data key: give it the same keyring_file as the other coordinators", idx))
	}
	b, err := secret.Open(key, string(buf), entryLabel)
	if err != nil {
		panic(fmt.Sprintf("fsm: cannot open sealed log entry %d: %v", idx, err))
	}
	return b
}

// sealEntry seals a command's bytes for the log when the cluster has a
// data key.
func (s *Server) sealEntry(t MessageType, b []byte) ([]byte, error) {
	key := s.fsm.keys.get()
	if key == nil || t == DataKeyType {
		return b, nil
	}
	sealed, err := secret.Seal(key, b, entryLabel)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(SealedEntryType)}, sealed...), nil
}

// ensureDataKey is a leader duty: the first leader with a keyring_file
// makes the data key, before anything an operator writes.
func (s *Server) ensureDataKey() {
	// Every apply passes here (report batches included): once the key is
	// known, that is one read under the keys' read lock, nothing more.
	if len(s.cfg.KEK) == 0 || s.fsm.keys.get() != nil || s.raft.State() != raftLeader {
		return
	}
	s.dataKeyMu.Lock()
	defer s.dataKeyMu.Unlock()
	s.State().mu.RLock()
	have := s.State().data.DataKey != ""
	s.State().mu.RUnlock()
	if have {
		return
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		s.log.Error("data key", "err", err)
		return
	}
	sealed, err := secret.Seal(s.cfg.KEK, key, dataKeyLabel)
	if err != nil {
		s.log.Error("seal the data key", "err", err)
		return
	}
	if _, err := s.apply(DataKeyType, DataKeyCmd{Sealed: sealed}); err != nil {
		s.log.Warn("store the data key", "err", err)
		return
	}
	s.log.Info("cluster data key made: the Raft log and snapshots are sealed from now on")
}

// sealedSnapshot is how a state snapshot is written once there is a data
// key: the data key sealed with the KEK, and the state sealed with it.
type sealedSnapshot struct {
	DataKey string `json:"sealed_data_key"`
	State   string `json:"sealed_state"`
}

// encodeSnapshot serialises state bytes for a snapshot.
func (f *FSM) encodeSnapshot(state []byte, sealedKey string) ([]byte, error) {
	key := f.keys.get()
	if key == nil || sealedKey == "" {
		return state, nil
	}
	body, err := secret.Seal(key, state, snapshotLabel)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealedSnapshot{DataKey: sealedKey, State: body})
}

// decodeSnapshot returns the state bytes of a snapshot, opening a sealed
// one with this coordinator's KEK.
func (f *FSM) decodeSnapshot(b []byte) ([]byte, error) {
	if !bytes.Contains(b[:min(len(b), 64)], []byte(`"sealed_data_key"`)) {
		return b, nil
	}
	var ss sealedSnapshot
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, err
	}
	f.keys.mu.RLock()
	kek := f.keys.kek
	f.keys.mu.RUnlock()
	if len(kek) == 0 {
		return nil, errors.New("the snapshot is sealed: this coordinator needs the keyring_file of the cluster that took it")
	}
	key, err := secret.Open(kek, ss.DataKey, dataKeyLabel)
	if err != nil {
		return nil, fmt.Errorf("the snapshot is sealed with another cluster's key-encryption key (keyring_file): %w", err)
	}
	state, err := secret.Open(key, ss.State, snapshotLabel)
	if err != nil {
		return nil, fmt.Errorf("open the snapshot: %w", err)
	}
	return state, nil
}

// ErrNeedKeyring means a coordinator without a keyring_file was started on
// a Raft log that the cluster's data key seals.
var ErrNeedKeyring = errors.New("this coordinator's Raft log is sealed with the cluster's data key: start it with keyring_file (--keyring-file) set to the file the other coordinators use")

// refuseSealedLog looks at the newest commands of the log (a coordinator
// with no key-encryption key is about to start on it): one that is sealed
// means the coordinator could not apply it, so it stops now with the fix
// rather than failing on that entry later.
func refuseSealedLog(logs raft.LogStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("read the raft log: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("read the raft log: %w", err)
	}
	for i, seen := last, 0; i >= first && i > 0 && seen < 256; i, seen = i-1, seen+1 {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			continue
		}
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			if MessageType(l.Data[0]) == SealedEntryType || MessageType(l.Data[0]) == DataKeyType {
				return ErrNeedKeyring
			}
		}
	}
	return nil
}
