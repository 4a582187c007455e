package daemon

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// ErrNeedsRestart marks a change that the running process cannot apply.
var ErrNeedsRestart = errors.New("takes effect after a restart")

// labelSetter and reconcileSetter are what the agent offers to change its
// labels (re-registering the node) and its reconcile interval while it
// runs. They are checked at run time so that the daemon applies them as
// soon as the agent has them.
type (
	labelSetter     interface{ SetLabels(map[string]string) }
	reconcileSetter interface{ SetReconcileInterval(time.Duration) }
)

// Reload applies the parts of c that can change while the process runs:
// the node's labels and the agent's reconcile interval. Other fields of c
// are ignored (the caller tells the operator which ones need a restart).
// What cannot be applied is reported in an error wrapping ErrNeedsRestart;
// the rest is still applied. Call it, SetLabels and SetReconcileInterval
// from one goroutine (the signal loop).
func (d *Daemon) Reload(c Config) error {
	return errors.Join(d.SetLabels(c.Labels), d.SetReconcileInterval(c.ReconcileInterval))
}

// SetLabels changes the node's labels; coordinators see them when the
// agent registers again.
func (d *Daemon) SetLabels(labels map[string]string) error {
	if maps.Equal(labels, d.cfg.Labels) {
		return nil
	}
	a := d.Agent()
	if a != nil {
		s, ok := any(a).(labelSetter)
		if !ok {
			return fmt.Errorf("labels: %w", ErrNeedsRestart)
		}
		s.SetLabels(maps.Clone(labels))
		d.log.Info("labels changed", "labels", labels)
	}
	d.cfg.Labels = maps.Clone(labels)
	return nil
}

// SetReconcileInterval changes how often the agent converges its cached
// plan again.
func (d *Daemon) SetReconcileInterval(interval time.Duration) error {
	if interval == d.cfg.ReconcileInterval {
		return nil
	}
	a := d.Agent()
	if a != nil {
		s, ok := any(a).(reconcileSetter)
		if !ok {
			return fmt.Errorf("reconcile_interval: %w", ErrNeedsRestart)
		}
		s.SetReconcileInterval(interval)
		d.log.Info("reconcile interval changed", "interval", interval)
	}
	d.cfg.ReconcileInterval = interval
	return nil
}
