package actions

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// identity is the account a run's processes take on: the action's user
// and group, else the agent's step_user and step_group (Request.StepUser,
// StepGroup). A run without one runs as the agent itself, as it always
// did.
type identity struct {
	// user and group are the names asked for; user is "" when only a
	// group is.
	user, group string
	uid, gid    uint32
	// groups are the user's supplementary groups; with keepGroups (a
	// group alone) the agent's own are kept.
	groups     []uint32
	keepGroups bool
	home       string
	// same: the agent's own uid and gid, which it cannot change (it does
	// not run as root): only the environment and umask apply.
	same bool
}

// agentIDs is the agent's own effective uid and gid (tests pretend).
var agentIDs = func() (uid, gid int) { return os.Geteuid(), os.Getegid() }

// resolveIdentity looks up the account a request runs as on this node,
// or returns nil when the run keeps the agent's own. A user or group that
// does not exist, or one the agent cannot switch to, is an error that
// fails the step.
func resolveIdentity(req Request) (*identity, error) {
	userName, groupName := req.Action.User, req.Action.Group
	if userName == "" {
		userName = req.StepUser
		if groupName == "" {
			groupName = req.StepGroup
		}
	}
	if userName == "" && groupName == "" {
		return nil, nil
	}
	euid, egid := agentIDs()
	id := &identity{user: userName, group: groupName, uid: uint32(euid), gid: uint32(egid)}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				return nil, fmt.Errorf("user %q does not exist on this node", userName)
			}
			return nil, fmt.Errorf("look up user %q: %w", userName, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user %q: %w", userName, err)
		}
		id.uid, id.gid, id.home = uint32(uid), uint32(gid), u.HomeDir
		gids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("groups of user %q: %w", userName, err)
		}
		for _, s := range gids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil {
				id.groups = append(id.groups, uint32(g))
			}
		}
	} else {
		id.keepGroups = true
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			var unknown user.UnknownGroupError
			if errors.As(err, &unknown) {
				return nil, fmt.Errorf("group %q does not exist on this node", groupName)
			}
			return nil, fmt.Errorf("look up group %q: %w", groupName, err)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", groupName, err)
		}
		id.gid = uint32(gid)
	}
	if euid != 0 {
		switch {
		case id.uid != uint32(euid):
			return nil, fmt.Errorf("the agent runs as uid %d, not root: it cannot run steps as user %q", euid, userName)
		case id.gid != uint32(egid):
			return nil, fmt.Errorf("the agent runs as uid %d, not root: it cannot run steps as group %q (its group is gid %d)", euid, groupName, egid)
		}
		id.same = true
	}
	return id, nil
}

// String names the account for messages: "user \"app\"" or
// "group \"adm\"".
func (id *identity) String() string {
	if id.user != "" {
		return fmt.Sprintf("user %q", id.user)
	}
	return fmt.Sprintf("group %q", id.group)
}

// foreign says whether the run's processes are another user than the
// agent, who then needs the agent's files handed over.
func (id *identity) foreign() bool {
	uid, _ := agentIDs()
	return id != nil && id.uid != uint32(uid)
}

// credential is what the process starts with; nil keeps the agent's.
func (id *identity) credential() *syscall.Credential {
	if id == nil || id.same {
		return nil
	}
	return &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups, NoSetGroups: id.keepGroups}
}

// env sets HOME, USER and LOGNAME for a named user (they win over the
// agent's and over attributes of those names).
func (id *identity) env(env []string) []string {
	if id == nil || id.user == "" {
		return env
	}
	return append(env, "HOME="+id.home, "USER="+id.user, "LOGNAME="+id.user)
}

// umaskShell runs a command with umask 077 (Go cannot set a child's umask
// between fork and exec): sh sets it and execs the command in its place,
// which keeps the pid, the process group and the exit status.
const umaskShell = `umask 077 && exec "$@"`

// may says whether id's processes have the permission bits (4 read, 1
// search) on a file or folder.
func (id *identity) may(info fs.FileInfo, bits fs.FileMode) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || id.uid == 0 {
		return true
	}
	perm := info.Mode().Perm()
	switch {
	case st.Uid == id.uid:
		return perm>>6&bits == bits
	case st.Gid == id.gid || contains32(id.groups, st.Gid):
		return perm>>3&bits == bits
	}
	return perm&bits == bits
}

func contains32(l []uint32, v uint32) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// grantAccess lets id's processes reach the scratch folder (which
// handOver then gives them) and read the module folder. Folders inside
// the agent's data folder that the agent owns get search permission for
// everyone (0711: passing through, no listing), the module folder read
// permission too (0755: module files are code, not secrets); a folder
// outside it that id cannot pass is an error that says what to change.
func grantAccess(req Request, id *identity) error {
	data := filepath.Clean(req.DataDir)
	inData := func(p string) bool {
		return req.DataDir != "" && (p == data || strings.HasPrefix(p, data+string(filepath.Separator)))
	}
	open := func(p string, bits fs.FileMode, what string) error {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if id.may(info, bits) {
			return nil
		}
		euid, _ := agentIDs()
		if st, ok := info.Sys().(*syscall.Stat_t); ok && inData(p) && st.Uid == uint32(euid) {
			return os.Chmod(p, info.Mode().Perm()|bits<<3|bits)
		}
		fix := "o+x"
		if bits&4 != 0 {
			fix = "o+rx"
		}
		return fmt.Errorf("%s cannot %s %s (mode %04o): allow it (chmod %s %s) or run the step as another user",
			id, what, p, info.Mode().Perm(), fix, p)
	}
	for _, t := range []struct {
		dir  string
		read bool
	}{{req.ScratchDir, false}, {req.ModuleDir, true}} {
		dir := filepath.Clean(t.dir)
		var parents []string
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			parents = append(parents, p)
			if p == filepath.Dir(p) {
				break
			}
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := open(parents[i], 1, "reach"); err != nil {
				return err
			}
		}
		if t.read {
			if err := open(dir, 5, "read the module folder"); err != nil {
				return err
			}
		}
	}
	return nil
}

// handOver gives the scratch folder and everything in it to uid and gid,
// so that a step running as another user reads its attributes and writes
// its outputs. Modes stay as they are: 0700 and 0600, not readable by
// anyone else.
func handOver(dir string, uid, gid uint32) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// reclaim takes the scratch folder back from the account of an earlier
// run before the agent writes or reads in it: when anything in it belongs
// to another user, every folder and file becomes the agent's again
// (folders 0700, files at most 0700), and what the agent cannot safely
// own or follow is removed: symbolic links, special files and files with
// other hard links, which could make the agent write, read or hand over a
// file outside the folder. Each folder is taken before it is listed, so
// that a process the run left behind cannot add to it meanwhile.
func reclaim(dir string) error {
	uid, gid := agentIDs()
	foreign := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			var info fs.FileInfo
			if info, err = d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(uid) {
					foreign = true
					return filepath.SkipAll
				}
				return nil
			}
		}
		if errors.Is(err, fs.ErrNotExist) && p != dir {
			return nil // gone meanwhile (a process of the last run)
		}
		return err
	})
	if err != nil || !foreign {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
			return os.Chmod(p, 0o700)
		case info.Mode().IsRegular() && st != nil && st.Nlink == 1:
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
			return os.Chmod(p, info.Mode().Perm()&0o700)
		}
		return os.Remove(p)
	})
}
