package daemon

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/signing"
)

// loadModuleTrust reads the trusted public key files of the modules
// block; nil when there are none and nothing is required (signatures are
// then not checked).
func loadModuleTrust(paths []string, require bool) (*coordinator.ModuleTrust, error) {
	if len(paths) == 0 && !require {
		return nil, nil
	}
	keys, err := signing.LoadKeyring(paths)
	if err != nil {
		return nil, fmt.Errorf("modules.trusted_keys: %w", err)
	}
	return &coordinator.ModuleTrust{Keys: keys, Require: require}, nil
}

func logModuleTrust(log *slog.Logger, t *coordinator.ModuleTrust) {
	if t == nil {
		return
	}
	var ids []string
	for _, k := range t.Keys.Keys() {
		ids = append(ids, k.ID()+" ("+k.File+")")
	}
	log.Info("module signatures checked", "component", "coordinator", "trusted_keys", strings.Join(ids, ", "), "require_signature", t.Require)
}

// ReloadModuleTrust reads the trusted module keys again (SIGHUP) and hands
// them to the coordinator; on an error nothing changes. An agent without
// a coordinator has nothing to reload.
func (d *Daemon) ReloadModuleTrust(paths []string, require bool) error {
	if d.coord == nil {
		return nil
	}
	t, err := loadModuleTrust(paths, require)
	if err != nil {
		return err
	}
	if t == nil && d.coord.ModuleTrust() != nil {
		d.log.Info("module signatures no longer checked: no modules.trusted_keys", "component", "coordinator")
	}
	d.coord.SetModuleTrust(t)
	logModuleTrust(d.log, t)
	return nil
}
