package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dtkhq/dtk/internal/api"
)

// OperatorCmd is `dtkctl operator`: cluster membership, Raft and backups.
type OperatorCmd struct {
	Members  OperatorMembersCmd `cmd:"" help:"List the gossip pool: coordinators and agents, with roles and health."`
	Raft     OperatorRaftCmd    `cmd:"" help:"Inspect and change the Raft configuration."`
	Snapshot OperatorSnapCmd    `cmd:"" help:"Save or restore a snapshot of the whole cluster (state and module blobs)."`
	Leave    OperatorLeaveCmd   `cmd:"" help:"Make the coordinator at --addr leave the cluster for good and stop."`
	Keyring  OperatorKeyringCmd `cmd:"" help:"Rotate the gossip encryption key: list, install, use, remove."`
}

// OperatorMembersCmd is `dtkctl operator members`.
type OperatorMembersCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists members.
func (c *OperatorMembersCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	ms, err := cl.Members(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(ms)
	}
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{m.Name, m.Role, out.paint(m.Status), m.Addr, orDash(m.HTTPAddr), orDash(m.RaftAddr), orDash(m.Version)})
	}
	out.Table([]string{"NAME", "ROLE", "STATUS", "GOSSIP", "HTTP", "RAFT", "VERSION"}, rows)
	return nil
}

// OperatorRaftCmd is `dtkctl operator raft`.
type OperatorRaftCmd struct {
	Peers      OperatorRaftPeersCmd  `cmd:"" help:"Who leads, who votes, the last index."`
	RemovePeer OperatorRaftRemoveCmd `cmd:"" name:"remove-peer" help:"Remove a dead coordinator from the Raft configuration."`
}

// OperatorRaftPeersCmd is `dtkctl operator raft peers`.
type OperatorRaftPeersCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run shows the Raft configuration.
func (c *OperatorRaftPeersCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	p, err := cl.RaftPeers(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(p)
	}
	rows := make([][]string, 0, len(p.Servers))
	for _, s := range p.Servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		rows = append(rows, []string{s.ID, s.Address, out.paint(state), strconv.FormatBool(s.Voter)})
	}
	out.Table([]string{"ID", "ADDRESS", "STATE", "VOTER"}, rows)
	out.Printf("last index %d, applied %d\n", p.LastIndex, p.AppliedIndex)
	return nil
}

// OperatorRaftRemoveCmd is `dtkctl operator raft remove-peer ID`.
type OperatorRaftRemoveCmd struct {
	ID   string `arg:"" help:"Server ID (the coordinator's name) or Raft address."`
	JSON bool   `help:"Print JSON."`
}

// Run removes a peer.
func (c *OperatorRaftRemoveCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.RemovePeer(ctx, c.ID); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"removed": c.ID})
	}
	out.Printf("removed %s from the raft configuration\n", c.ID)
	return nil
}

// OperatorSnapCmd is `dtkctl operator snapshot`.
type OperatorSnapCmd struct {
	Save    OperatorSnapSaveCmd    `cmd:"" help:"Write a snapshot to FILE."`
	Restore OperatorSnapRestoreCmd `cmd:"" help:"Restore the cluster from FILE (replaces its state)."`
}

// OperatorSnapSaveCmd is `dtkctl operator snapshot save FILE`.
type OperatorSnapSaveCmd struct {
	File string `arg:"" help:"Where to write the snapshot." type:"path"`
	JSON bool   `help:"Print JSON: the file and its size."`
}

// Run saves a snapshot atomically: a partial download never replaces FILE.
func (c *OperatorSnapSaveCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	tmp, err := os.CreateTemp(filepath.Dir(c.File), ".dtk-snapshot-*")
	if err != nil {
		return usagef("cannot write %s: %v", c.File, err)
	}
	defer os.Remove(tmp.Name())
	n, err := cl.SnapshotSave(ctx, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.File); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"file": c.File, "bytes": n})
	}
	out.Printf("saved snapshot to %s (%d bytes)\n", c.File, n)
	return nil
}

// OperatorSnapRestoreCmd is `dtkctl operator snapshot restore FILE`.
type OperatorSnapRestoreCmd struct {
	File string `arg:"" help:"A snapshot written by snapshot save." type:"existingfile"`
	JSON bool   `help:"Print the coordinator's answer as JSON."`
}

// Run restores a snapshot.
func (c *OperatorSnapRestoreCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	f, err := os.Open(c.File)
	if err != nil {
		return usagef("%v", err)
	}
	defer f.Close()
	res, err := cl.SnapshotRestore(ctx, f)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(res)
	}
	out.Printf("restored %s (snapshot index %v, %v blobs)\n", c.File, res["restored_index"], res["blobs"])
	return nil
}

// OperatorLeaveCmd is `dtkctl operator leave`.
type OperatorLeaveCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run asks the coordinator at --addr to leave.
func (c *OperatorLeaveCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.Leave(ctx); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"leaving": cl.Current()})
	}
	out.Printf("the coordinator at %s is leaving the cluster\n", cl.Current())
	return nil
}
