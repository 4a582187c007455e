package gossip

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/dtkhq/dtk/internal/secret"
)

// ErrNotEncrypted is returned by the keyring operations of a member that
// gossips in clear.
var ErrNotEncrypted = errors.New("gossip encryption is off: start every member with --encrypt")

// keyringLabel binds a sealed keyring file to its purpose.
const keyringLabel = "gossip-keyring"

// keyringWatch is how often the keyring is compared with the saved one,
// to notice rotations started by other members.
const keyringWatch = time.Second

// KeyringStatus is the pool-wide answer to a keyring operation.
type KeyringStatus struct {
	// Keys counts, for each installed key (base64), the members holding it.
	Keys map[string]int `json:"keys"`
	// PrimaryKeys counts, for each primary key, the members using it.
	PrimaryKeys map[string]int `json:"primary_keys"`
	NumNodes    int            `json:"num_nodes"`
	// Messages holds what members said, by member name (errors mostly).
	Messages map[string]string `json:"messages,omitempty"`
}

// keyringFile is the saved keyring: plain JSON, or that JSON sealed with
// the key-encryption key.
type keyringFile struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// setupKeyring builds the keyring a member starts with: the saved one
// when there is one (it may have been rotated since the configuration was
// written), else EncryptKey; nil when encryption is off.
func setupKeyring(cfg Config, log *slog.Logger) (*memberlist.Keyring, error) {
	var configured []byte
	if cfg.EncryptKey != "" {
		k, err := secret.ParseKey(cfg.EncryptKey)
		if err != nil {
			return nil, fmt.Errorf("gossip encryption key: %w", err)
		}
		configured = k
	}
	saved, err := loadKeyring(cfg.KeyringPath, cfg.KEK)
	if err != nil {
		return nil, err
	}
	if saved != nil {
		if configured != nil && !slices.ContainsFunc(saved.GetKeys(), func(k []byte) bool { return bytes.Equal(k, configured) }) {
			log.Warn("the configured gossip key is not in the saved keyring (rotated since?); using the saved keyring",
				"keyring", cfg.KeyringPath)
		}
		return saved, nil
	}
	if configured == nil {
		return nil, nil
	}
	return memberlist.NewKeyring(nil, configured)
}

// loadKeyring reads a saved keyring; nil, nil when there is none.
func loadKeyring(path string, kek []byte) (*memberlist.Keyring, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	text := string(b)
	if secret.IsSealed(text) {
		if kek == nil {
			return nil, fmt.Errorf("gossip keyring %s is sealed: the key-encryption key is needed to read it", path)
		}
		plain, err := secret.Open(kek, text, keyringLabel)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
		}
		b = plain
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
	}
	primary, err := secret.ParseKey(f.Primary)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring %s: primary key: %w", path, err)
	}
	var keys [][]byte
	for _, s := range f.Keys {
		k, err := secret.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
		}
		keys = append(keys, k)
	}
	kr, err := memberlist.NewKeyring(keys, primary)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring %s: %w", path, err)
	}
	return kr, nil
}

// Encrypted reports whether this member encrypts its gossip.
func (m *Member) Encrypted() bool { return m.keyring != nil }

// LocalKeys returns this member's keyring, base64: the primary key (used
// to encrypt) and every installed key (tried to decrypt), primary first.
func (m *Member) LocalKeys() (primary string, keys []string) {
	if m.keyring == nil {
		return "", nil
	}
	enc := base64.StdEncoding.EncodeToString
	for _, k := range m.keyring.GetKeys() {
		keys = append(keys, enc(k))
	}
	return enc(m.keyring.GetPrimaryKey()), keys
}

// ListKeys asks every member for its keys.
func (m *Member) ListKeys() (*KeyringStatus, error) {
	if !m.Encrypted() {
		return nil, ErrNotEncrypted
	}
	resp, err := m.serf.KeyManager().ListKeys()
	st := keyringStatus(resp)
	if err != nil {
		return st, fmt.Errorf("list keys: %w%s", err, st.detail())
	}
	return st, nil
}

// InstallKey adds key to every member's keyring; members still encrypt
// with their primary key, and decrypt with either.
func (m *Member) InstallKey(key string) (*KeyringStatus, error) {
	return m.keyOp("install key", key, m.serf.KeyManager().InstallKey)
}

// UseKey makes key, already installed everywhere, the primary key of every
// member.
func (m *Member) UseKey(key string) (*KeyringStatus, error) {
	return m.keyOp("use key", key, m.serf.KeyManager().UseKey)
}

// RemoveKey removes key from every member's keyring. The primary key
// cannot be removed.
func (m *Member) RemoveKey(key string) (*KeyringStatus, error) {
	return m.keyOp("remove key", key, m.serf.KeyManager().RemoveKey)
}

// keyOp runs one pool-wide keyring operation and saves this member's
// keyring right after, whatever the outcome (the local keyring may have
// changed even when another member failed). On failure the status, when
// there is one, says which members failed.
func (m *Member) keyOp(what, key string, op func(string) (*serf.KeyResponse, error)) (*KeyringStatus, error) {
	if !m.Encrypted() {
		return nil, ErrNotEncrypted
	}
	k, err := secret.ParseKey(key)
	if err != nil {
		return nil, err
	}
	resp, err := op(base64.StdEncoding.EncodeToString(k))
	st := keyringStatus(resp)
	saveErr := m.saveKeyring()
	if err != nil {
		return st, fmt.Errorf("%s: %w%s", what, err, st.detail())
	}
	if saveErr != nil {
		return st, fmt.Errorf("%s: done in the pool, but saving this member's keyring failed: %w", what, saveErr)
	}
	return st, nil
}

func keyringStatus(r *serf.KeyResponse) *KeyringStatus {
	if r == nil {
		return nil
	}
	st := &KeyringStatus{Keys: r.Keys, PrimaryKeys: r.PrimaryKeys, NumNodes: r.NumNodes}
	if len(r.Messages) > 0 {
		st.Messages = r.Messages
	}
	return st
}

// detail renders the members' messages for an error: " (a: msg; b: msg)".
func (st *KeyringStatus) detail() string {
	if st == nil || len(st.Messages) == 0 {
		return ""
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(st.Messages)) {
		parts = append(parts, name+": "+st.Messages[name])
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// keyringState is the keyring as saved, for comparison.
func (m *Member) keyringState() keyringFile {
	primary, keys := m.LocalKeys()
	return keyringFile{Primary: primary, Keys: keys}
}

// saveKeyring writes the keyring to KeyringPath, atomically and with mode
// 0600, when it differs from what was last saved.
func (m *Member) saveKeyring() error {
	if m.keyring == nil || m.keyringPath == "" {
		return nil
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	cur := m.keyringState()
	if m.savedKeys != nil && m.savedKeys.Primary == cur.Primary && slices.Equal(m.savedKeys.Keys, cur.Keys) {
		return nil
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	if m.kek != nil {
		sealed, err := secret.Seal(m.kek, b, keyringLabel)
		if err != nil {
			return fmt.Errorf("seal gossip keyring: %w", err)
		}
		b = []byte(sealed + "\n")
	}
	tmp := m.keyringPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save gossip keyring: %w", err)
	}
	if err := os.Rename(tmp, m.keyringPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save gossip keyring: %w", err)
	}
	m.savedKeys = &cur
	return nil
}

// watchKeyring saves the keyring whenever it changes: rotations started by
// other members reach this one through serf's internal queries, which
// change memberlist's keyring without telling anyone.
func (m *Member) watchKeyring(stop <-chan struct{}) {
	defer close(m.keysDone)
	t := time.NewTicker(keyringWatch)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := m.saveKeyring(); err != nil {
				m.log.Warn("gossip keyring changed but could not be saved", "err", err)
			}
		}
	}
}

// cryptLog receives memberlist's log lines and passes on, at warn and at
// most once per cryptLogEvery, those about traffic that did not decrypt
// (a member with another key, or without encryption); the rest goes to
// next (dropped when nil).
type cryptLog struct {
	log *slog.Logger
	// next takes the other lines.
	next io.Writer

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const cryptLogEvery = 10 * time.Second

// cryptNeedles pick out memberlist's complaints about traffic it could not
// decrypt, or that was not encrypted when it should have been.
var cryptNeedles = []string{"ecrypt", "remote state is encrypted", "remote state is not encrypted"}

func (c *cryptLog) Write(p []byte) (int, error) {
	if !slices.ContainsFunc(cryptNeedles, func(n string) bool { return bytes.Contains(p, []byte(n)) }) {
		if c.next != nil {
			return c.next.Write(p)
		}
		return len(p), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.last) >= cryptLogEvery {
		line := strings.TrimSpace(string(p))
		if _, rest, ok := strings.Cut(line, "memberlist: "); ok {
			line = rest
		}
		c.log.Warn("gossip traffic refused: the sender uses another gossip key or no encryption",
			"detail", line, "similar_suppressed", c.suppressed)
		c.last, c.suppressed = now, 0
	} else {
		c.suppressed++
	}
	return len(p), nil
}

// AdoptKeys installs keys this member lacks into its own keyring (not the
// pool's) and makes primary its primary key: an agent that was away while
// the pool rotated its key gets the current keys from a coordinator over
// mutual TLS and can join again. Keys it holds beyond those are kept. It
// reports whether anything changed.
func (m *Member) AdoptKeys(primary string, keys []string) (bool, error) {
	if !m.Encrypted() {
		return false, ErrNotEncrypted
	}
	have := map[string]bool{}
	for _, k := range m.keyring.GetKeys() {
		have[base64.StdEncoding.EncodeToString(k)] = true
	}
	changed := false
	for _, k := range append([]string{primary}, keys...) {
		b, err := secret.ParseKey(k)
		if err != nil {
			return changed, err
		}
		if enc := base64.StdEncoding.EncodeToString(b); !have[enc] {
			if err := m.keyring.AddKey(b); err != nil {
				return changed, fmt.Errorf("add gossip key: %w", err)
			}
			have[enc], changed = true, true
		}
	}
	p, _ := secret.ParseKey(primary)
	if !bytes.Equal(m.keyring.GetPrimaryKey(), p) {
		if err := m.keyring.UseKey(p); err != nil {
			return changed, fmt.Errorf("use gossip key: %w", err)
		}
		changed = true
	}
	if changed {
		if err := m.saveKeyring(); err != nil {
			return changed, err
		}
		m.log.Info("gossip keys updated from the coordinators")
	}
	return changed, nil
}
