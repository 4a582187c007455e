package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
)

// VersionCmd is `dtkctl version`.
type VersionCmd struct {
	JSON bool `help:"Print JSON: the client's version and each coordinator's."`
}

// Help is the detail of `version --help`.
func (VersionCmd) Help() string {
	return `Prints dtkctl's version, then the version of every coordinator: the one at --addr (GET /v1/status) and the others the gossip pool lists. With no coordinator reachable it prints the client's version and a note, and exits 0.

Examples:
  dtkctl version
  dtkctl version --json | jq -r '.coordinators[].version'`
}

// versionTimeout bounds the questions to the coordinators: version must
// answer quickly even when none is reachable.
const versionTimeout = 5 * time.Second

// versionInfo is what `dtkctl version --json` prints.
type versionInfo struct {
	Client       clientVersion  `json:"client"`
	Coordinators []coordVersion `json:"coordinators"`
	// Note says why coordinators are missing (none reachable, no right to
	// list members).
	Note string `json:"note,omitempty"`
}

type clientVersion struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

type coordVersion struct {
	Name    string `json:"name"`
	Addr    string `json:"addr,omitempty"`
	Version string `json:"version"`
	Status  string `json:"status,omitempty"`
	Leader  bool   `json:"leader"`
	// Current is the coordinator at --addr, which answered.
	Current bool `json:"current,omitempty"`
}

// Run prints the versions.
func (c *VersionCmd) Run(ctx context.Context, clients clientFunc, out *Output) error {
	info := versionInfo{
		Client:       clientVersion{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH},
		Coordinators: []coordVersion{},
	}
	if cl, err := clients(); err != nil {
		info.Note = "coordinators not asked: " + err.Error()
	} else {
		qctx, cancel := context.WithTimeout(ctx, versionTimeout)
		info.Coordinators, info.Note = coordinatorVersions(qctx, cl)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if c.JSON {
		return out.JSON(info)
	}
	out.Printf("dtkctl %s (%s, %s/%s)\n", info.Client.Version, info.Client.Go, info.Client.OS, info.Client.Arch)
	if len(info.Coordinators) > 0 {
		rows := make([][]string, 0, len(info.Coordinators))
		for _, co := range info.Coordinators {
			state := co.Status
			if co.Leader {
				state = "leader"
			}
			rows = append(rows, []string{co.Name, orDash(co.Addr), orDash(co.Version), out.paint(orDash(state))})
		}
		out.Printf("\n")
		out.Table([]string{"COORDINATOR", "ADDRESS", "VERSION", "STATE"}, rows)
	}
	if info.Note != "" {
		out.Notef("note: %s\n", info.Note)
	}
	return nil
}

// coordinatorVersions asks the coordinator at the client's address for
// its version, then the gossip pool for the other coordinators'. What it
// could not learn is said in note.
func coordinatorVersions(ctx context.Context, cl *api.Client) (cos []coordVersion, note string) {
	cos = []coordVersion{}
	addr := cl.Current()
	st, err := cl.Status(ctx)
	if err != nil {
		return cos, fmt.Sprintf("no coordinator answered at %s (%v): only the client's version is shown", addr, unwrapAPI(err))
	}
	cur := coordVersion{Name: st.Name, Addr: addr, Version: st.Version, Status: "alive", Leader: st.IsLeader, Current: true}
	members, err := cl.Members(ctx)
	if err != nil {
		return append(cos, cur), fmt.Sprintf("the other coordinators are not shown: listing the members failed: %v", unwrapAPI(err))
	}
	found := false
	for _, m := range members {
		if m.Role != gossip.RoleCoordinator {
			continue
		}
		co := coordVersion{Name: m.Name, Addr: m.HTTPAddr, Version: m.Version, Status: m.Status, Leader: m.Name == st.Leader}
		if m.Name == st.Name {
			co.Addr, co.Version, co.Current, co.Leader = cur.Addr, cur.Version, true, cur.Leader
			found = true
		}
		cos = append(cos, co)
	}
	if !found {
		cos = append(cos, cur)
	}
	sort.Slice(cos, func(i, j int) bool { return cos[i].Name < cos[j].Name })
	return cos, ""
}

func unwrapAPI(err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return errors.New(ae.Message)
	}
	return err
}
