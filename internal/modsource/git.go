package modsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// GitRef is a parsed git::URL//PATH?ref=REF, go-getter's syntax.
type GitRef struct {
	// Repo is the repository: an https://, http://, ssh://, git:// or
	// file:// URL, an scp-like address (git@host:org/repo.git) or a
	// local path.
	Repo string
	// Path is the module folder inside the repository (slash-separated,
	// clean); "" is the repository's root.
	Path string
	// Ref is a tag, a branch or a commit (full or abbreviated hash); ""
	// is the remote's default branch.
	Ref string
}

var (
	scpLike   = regexp.MustCompile(`^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^/]`)
	hexPrefix = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	// badRefChars are characters git does not allow in a ref name.
	badRefChars = regexp.MustCompile(`[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|^[-/.]|/$|\.lock$`)
)

// gitSchemes are the URL schemes go-git clones over.
var gitSchemes = map[string]bool{"https": true, "http": true, "ssh": true, "git": true, "file": true}

// ParseGit parses s, which starts with git::. The module folder follows
// the repository after a double slash (git::URL//modules/web); ?ref= names
// a tag, branch or commit.
func ParseGit(s string) (GitRef, error) {
	rest, ok := strings.CutPrefix(s, GitPrefix)
	if !ok {
		return GitRef{}, fmt.Errorf("%w: %q does not start with %s", ErrSyntax, s, GitPrefix)
	}
	bad := func(format string, args ...any) (GitRef, error) {
		return GitRef{}, fmt.Errorf("%w: %q: %s (the form is git::URL//PATH?ref=TAG)", ErrSyntax, s, fmt.Sprintf(format, args...))
	}
	var query string
	if i := strings.Index(rest, "?"); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	// The first double slash after the scheme's separates the folder, as
	// in go-getter (file:///srv/repo//web: the repository /srv/repo).
	offset := 0
	if i := strings.Index(rest, "://"); i >= 0 {
		offset = i + len("://")
	}
	repo, sub := rest, ""
	if i := strings.Index(rest[offset:], "//"); i >= 0 {
		repo, sub = rest[:offset+i], rest[offset+i+2:]
	}
	if repo == "" {
		return bad("no repository")
	}
	if i := strings.Index(repo, "://"); i >= 0 {
		u, err := url.Parse(repo)
		if err != nil {
			return bad("%v", err)
		}
		if !gitSchemes[u.Scheme] {
			return bad("the scheme %s:// is not one of https, http, ssh, git, file", u.Scheme)
		}
		if u.Scheme != "file" && u.Host == "" {
			return bad("the URL has no host")
		}
		if u.Scheme == "file" && u.Path == "" {
			return bad("the file:// URL has no path")
		}
	}
	if sub != "" {
		sub = path.Clean(sub)
		if path.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
			return bad("the module folder %q must be a path inside the repository", sub)
		}
		if sub == "." {
			sub = ""
		}
	}
	g := GitRef{Repo: repo, Path: sub}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return bad("%v", err)
		}
		for k, v := range q {
			if k != "ref" {
				return bad("unsupported parameter %q: only ref= is", k)
			}
			if len(v) != 1 || v[0] == "" {
				return bad("give one non-empty ref=")
			}
			g.Ref = v[0]
		}
		if badRefChars.MatchString(g.Ref) {
			return bad("%q is not a valid tag, branch or commit name", g.Ref)
		}
	}
	return g, nil
}

// String is the source as git::URL//PATH?ref=REF, without a password the
// URL may carry.
func (g GitRef) String() string {
	repo := g.Repo
	if u, err := url.Parse(repo); err == nil && u.User != nil {
		if _, set := u.User.Password(); set {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			repo = u.String()
		}
	}
	s := GitPrefix + repo
	if g.Path != "" {
		s += "//" + g.Path
	}
	if g.Ref != "" {
		s += "?ref=" + g.Ref
	}
	return s
}

// endpoint is the repository as go-git takes it: local paths made
// absolute.
func (g GitRef) endpoint() (string, error) {
	if strings.Contains(g.Repo, "://") || scpLike.MatchString(g.Repo) {
		return g.Repo, nil
	}
	return filepath.Abs(g.Repo)
}

// GitCheckout is what FetchGit checked out.
type GitCheckout struct {
	// Commit is the full hash checked out.
	Commit string `json:"commit"`
	// RefName is what the ref resolved to (refs/tags/v1.2.0,
	// refs/heads/main), "" for a commit.
	RefName string `json:"ref,omitempty"`
	// Dir is the module folder in the checkout.
	Dir string `json:"-"`
}

// fetchedRef is where FetchGit fetches the ref it resolved.
const fetchedRef = plumbing.ReferenceName("refs/dtk/fetched")

// FetchGit clones g's repository into dir (an empty or missing folder)
// and checks out g.Ref: a tag or branch with history one commit deep; a
// commit by its hash one commit deep where the server allows it, else
// with the full history of the branches and tags, in which an abbreviated
// hash is looked up. The module folder must stay inside dir.
func FetchGit(ctx context.Context, g GitRef, dir string) (*GitCheckout, error) {
	ep, err := g.endpoint()
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	remote, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{ep}})
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", g.Repo, gitError(err))
	}
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	co := &GitCheckout{}
	var commit plumbing.Hash
	switch name := resolveRefName(g.Ref, byName); {
	case name != "":
		co.RefName = name.String()
		if commit, err = fetchRef(ctx, repo, remote, name); err != nil {
			return nil, fmt.Errorf("git: %s: fetch %s: %w", g.Repo, name, gitError(err))
		}
	case hexPrefix.MatchString(g.Ref):
		if commit, err = fetchCommit(ctx, repo, remote, g.Ref); err != nil {
			return nil, fmt.Errorf("git: %s: %w", g.Repo, err)
		}
	case g.Ref == "":
		return nil, fmt.Errorf("git: %s: %w: the remote names no default branch: add ?ref=TAG", g.Repo, ErrNotFound)
	default:
		return nil, fmt.Errorf("git: %s: %w: %q is not a tag, branch or commit there (%s)", g.Repo, ErrNotFound, g.Ref, refSummary(byName))
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: commit, Force: true}); err != nil {
		return nil, fmt.Errorf("git: check out %s: %w", commit, err)
	}
	co.Commit = commit.String()
	if co.Dir, err = moduleFolder(dir, g.Path); err != nil {
		return nil, fmt.Errorf("git: %s at commit %s: %w", g, commit, err)
	}
	return co, nil
}

// resolveRefName finds ref among the remote's refs as git rev-parse
// would: a full name, then a tag, then a branch; "" (the default branch)
// is what HEAD points to. It returns "" for none.
func resolveRefName(ref string, refs map[plumbing.ReferenceName]*plumbing.Reference) plumbing.ReferenceName {
	if ref == "" {
		head := refs[plumbing.HEAD]
		switch {
		case head == nil:
			return ""
		case head.Type() == plumbing.SymbolicReference:
			return head.Target()
		}
		// No symref capability: the branch at HEAD's commit, main first.
		for _, b := range []plumbing.ReferenceName{"refs/heads/main", "refs/heads/master"} {
			if r := refs[b]; r != nil && r.Hash() == head.Hash() {
				return b
			}
		}
		return ""
	}
	for _, name := range []plumbing.ReferenceName{plumbing.ReferenceName(ref), plumbing.NewTagReferenceName(ref), plumbing.NewBranchReferenceName(ref)} {
		if r := refs[name]; r != nil && strings.HasPrefix(name.String(), "refs/") {
			return name
		}
	}
	return ""
}

// fetchRef fetches name one commit deep and returns the commit it is
// (an annotated tag peeled).
func fetchRef(ctx context.Context, repo *git.Repository, remote *git.Remote, name plumbing.ReferenceName) (plumbing.Hash, error) {
	spec := config.RefSpec("+" + name.String() + ":" + fetchedRef.String())
	err := remote.FetchContext(ctx, &git.FetchOptions{RefSpecs: []config.RefSpec{spec}, Depth: 1, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, err
	}
	r, err := repo.Reference(fetchedRef, true)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return peel(repo, r.Hash())
}

// peel follows annotated tags to the commit.
func peel(repo *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		tag, err := repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			c, err := repo.CommitObject(h)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a commit: %w", h, err)
			}
			return c.Hash, nil
		}
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if tag.TargetType != plumbing.TagObject && tag.TargetType != plumbing.CommitObject {
			return plumbing.ZeroHash, fmt.Errorf("tag %s points to a %s, not a commit", tag.Name, tag.TargetType)
		}
		h = tag.Target
	}
	return plumbing.ZeroHash, fmt.Errorf("tag %s: too many levels of tags", h)
}

// fetchCommit fetches the commit whose hash is or starts with prefix: a
// full hash one commit deep where the server allows fetching by hash,
// else (and for an abbreviated hash) every branch and tag with its
// history, in which the commit is looked up.
func fetchCommit(ctx context.Context, repo *git.Repository, remote *git.Remote, prefix string) (plumbing.Hash, error) {
	if len(prefix) == 40 {
		h := plumbing.NewHash(prefix)
		spec := config.RefSpec("+" + prefix + ":" + fetchedRef.String())
		err := remote.FetchContext(ctx, &git.FetchOptions{RefSpecs: []config.RefSpec{spec}, Depth: 1, Tags: git.NoTags})
		switch {
		case err == nil || errors.Is(err, git.NoErrAlreadyUpToDate):
			if c, err := repo.CommitObject(h); err == nil {
				return c.Hash, nil
			}
		case errors.Is(err, git.ErrExactSHA1NotSupported):
		default:
			// The server may refuse a hash it does not have ("not our
			// ref") or allows only advertised ones: look in the history.
		}
	}
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"},
		Tags:     git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, fmt.Errorf("fetch: %w", gitError(err))
	}
	iter, err := repo.CommitObjects()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var found []plumbing.Hash
	err = iter.ForEach(func(c *object.Commit) error {
		if strings.HasPrefix(c.Hash.String(), prefix) {
			found = append(found, c.Hash)
		}
		return nil
	})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, fmt.Errorf("%w: %q is not a tag or branch, and no commit on a branch or tag has that hash", ErrNotFound, prefix)
	case 1:
		return found[0], nil
	}
	return plumbing.ZeroHash, fmt.Errorf("%w: the abbreviated hash %q is ambiguous (%d commits): give more of it", ErrNotFound, prefix, len(found))
}

// moduleFolder is PATH in the checkout at dir, which must be a folder
// inside dir once symbolic links are followed.
func moduleFolder(dir, sub string) (string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.FromSlash(sub))
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: there is no folder %q", ErrNotFound, sub)
	}
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: %q leads out of the repository through a symbolic link", ErrUnsafe, sub)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %q is a file, not the module's folder", ErrNotFound, sub)
	}
	return real, nil
}

// refSummary lists a few of the remote's tags and branches for a "not
// found" message.
func refSummary(refs map[plumbing.ReferenceName]*plumbing.Reference) string {
	var tags, branches []string
	for name := range refs {
		switch {
		case name.IsTag():
			tags = append(tags, name.Short())
		case name.IsBranch():
			branches = append(branches, name.Short())
		}
	}
	list := func(what string, names []string) string {
		sort.Strings(names)
		if len(names) > 8 {
			names = append(names[len(names)-8:], "…")
		}
		if len(names) == 0 {
			return "no " + what
		}
		return what + ": " + strings.Join(names, ", ")
	}
	return list("tags", tags) + "; " + list("branches", branches)
}

// gitError maps go-git's transport errors to this package's.
func gitError(err error) error {
	switch {
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: no git repository there (%v)", ErrNotFound, err)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w: the repository is empty", ErrNotFound)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: ssh:// uses the ssh agent ($SSH_AUTH_SOCK) and ~/.ssh/known_hosts", err)
	}
	return err
}
