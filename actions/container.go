package actions

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dtkhq/dtk/internal/lazyre"
)

// Container runs, replaces or removes one container with podman or docker.
// Its settings are the step's attributes, by name (see containerSpec):
// image (required), image_archive, name, command, env, ports, volumes,
// restart, network and stop_timeout.
//
// create converges: the container carries the label dtk.config, a hash of
// its whole configuration including the image's ID. A running container
// of that name with the same hash is OK; anything else (absent, stopped,
// another hash) is removed and run anew: Changed. delete removes it (OK
// if absent). A dry run compares and reports without loading, pulling,
// removing or running anything.
type Container struct{}

var _ Runner = (*Container)(nil)

func init() { Register(Container{}) }

// Kind is "container".
func (Container) Kind() string { return "container" }

// Labels set on every container dtk runs.
const (
	LabelConfig = "dtk.config"
	LabelStep   = "dtk.step"
)

// Environment variables that adapt podman to a machine (see
// podmanSettings).
const (
	EnvPodmanFlags    = "DTK_PODMAN_FLAGS"
	EnvPodmanRunFlags = "DTK_PODMAN_RUN_FLAGS"
)

// containerSpec is a container's configuration, from attributes.
type containerSpec struct {
	Image        string            `json:"image"`
	ImageArchive string            `json:"image_archive,omitempty"`
	Name         string            `json:"name"`
	Command      []string          `json:"command,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Ports        []string          `json:"ports,omitempty"`
	Volumes      []string          `json:"volumes,omitempty"`
	Restart      string            `json:"restart"`
	Network      string            `json:"network,omitempty"`
	StopTimeout  int               `json:"stop_timeout"`
}

// containerSettings are the attributes the runner reads.
var containerSettings = []string{"image", "image_archive", "name", "command", "env", "ports", "volumes", "restart", "network", "stop_timeout"}

var (
	containerNameRE = lazyre.New(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	nameUnsafe      = lazyre.New(`[^a-zA-Z0-9_.-]+`)
)

// defaultContainerName is "dtk-SERVICE-NODE-INSTANCE", from the step ID
// without its action, so that create and delete name the same container.
func defaultContainerName(stepID string) string {
	base := stepID
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[:i]
	}
	return "dtk-" + strings.Trim(nameUnsafe.Get().ReplaceAllString(base, "-"), "-")
}

// parseContainerSpec reads the settings from req's attributes. It names
// attributes it does not know in notes.
func parseContainerSpec(req Request) (spec containerSpec, notes []string, err error) {
	spec = containerSpec{Restart: "unless-stopped", StopTimeout: 10, Name: defaultContainerName(req.StepID)}
	for _, name := range req.Sensitive {
		if name != "env" && contains(containerSettings, name) {
			return spec, nil, fmt.Errorf("container setting %q cannot be sensitive: it is on the engine's command line; only env values are passed through a file", name)
		}
	}
	names := make([]string, 0, len(req.Attributes))
	for k := range req.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	// Where each setting goes (env is decoded on its own).
	fields := map[string]any{
		"image": &spec.Image, "image_archive": &spec.ImageArchive, "name": &spec.Name,
		"command": &spec.Command, "ports": &spec.Ports, "volumes": &spec.Volumes,
		"restart": &spec.Restart, "network": &spec.Network, "stop_timeout": &spec.StopTimeout,
	}
	for _, k := range names {
		raw := req.Attributes[k]
		if isNull(raw) {
			continue
		}
		target, ok := fields[k]
		switch {
		case ok:
		case k == "env":
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return spec, nil, fmt.Errorf("container setting env: want a map: %w", err)
			}
			spec.Env = map[string]string{}
			for ek, ev := range m {
				if isNull(ev) {
					continue // unset, as for every kind
				}
				if !validEnvName(ek) {
					return spec, nil, fmt.Errorf("container setting env: invalid variable name %q", ek)
				}
				v := EnvValue(ev)
				if strings.ContainsAny(v, "\n\r") {
					return spec, nil, fmt.Errorf("container setting env: the value of %s holds a line break, which an env file cannot carry", ek)
				}
				spec.Env[ek] = v
			}
			continue
		default:
			notes = append(notes, fmt.Sprintf("attribute %q is not a container setting; ignored", k))
			continue
		}
		if err := json.Unmarshal(raw, target); err != nil {
			return spec, nil, fmt.Errorf("container setting %s: %w", k, err)
		}
	}
	switch {
	case spec.Image == "":
		return spec, nil, errors.New("container setting image is required: give the component an attribute \"image\" (an image reference)")
	case strings.HasPrefix(spec.Image, "-") || strings.ContainsAny(spec.Image, " \t\n"):
		return spec, nil, fmt.Errorf("container setting image: invalid reference %q", spec.Image)
	case !containerNameRE.MatchString(spec.Name):
		return spec, nil, fmt.Errorf("container setting name: invalid container name %q", spec.Name)
	case spec.StopTimeout < 0:
		return spec, nil, fmt.Errorf("container setting stop_timeout: %d is negative", spec.StopTimeout)
	}
	return spec, notes, nil
}

// engine is a container engine's command line.
type engine struct {
	name   string   // "podman" or "docker"
	path   string   // the executable
	global []string // flags before the subcommand
	run    []string // extra flags of run
	env    []string // its environment
}

// newEngine finds the engine an action names, or podman, else docker.
func newEngine(req Request) (*engine, error) {
	names := []string{"podman", "docker"}
	switch req.Action.Engine {
	case "":
	case "podman", "docker":
		names = []string{req.Action.Engine}
	default:
		return nil, fmt.Errorf("unknown container engine %q: use \"podman\" or \"docker\"", req.Action.Engine)
	}
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		e := &engine{name: name, path: p, env: os.Environ()}
		if name == "podman" {
			if err := podmanSettings(req, e); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("no container engine: %s not found on PATH (apt-get install podman runc)", strings.Join(names, " or "))
}

// podmanSettings adapts podman to the machine, in one place:
//
//   - global flags: $DTK_PODMAN_FLAGS if set (even empty), else
//     "--runtime runc --cgroup-manager cgroupfs", which work without
//     systemd and where crun cannot set rlimits;
//   - run flags: $DTK_PODMAN_RUN_FLAGS if set, else "--ulimit host";
//   - unless CONTAINERS_CONF is set or /etc/containers/containers.conf
//     sets default_ulimits, CONTAINERS_CONF names a file (under the data
//     folder) with default_ulimits = [], without which runc fails to set
//     rlimits where the agent's own are lower than podman's defaults.
func podmanSettings(req Request, e *engine) error {
	e.global = []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}
	if v, ok := os.LookupEnv(EnvPodmanFlags); ok {
		e.global = strings.Fields(v)
	}
	e.run = []string{"--ulimit", "host"}
	if v, ok := os.LookupEnv(EnvPodmanRunFlags); ok {
		e.run = strings.Fields(v)
	}
	if os.Getenv("CONTAINERS_CONF") != "" || setsDefaultUlimits("/etc/containers/containers.conf") {
		return nil
	}
	base := req.DataDir
	if base == "" {
		base = req.ScratchDir
	}
	conf := filepath.Join(base, "podman", "containers.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o700); err != nil {
		return fmt.Errorf("podman config: %w", err)
	}
	content := "# Written by dtk (see actions/container.go): no default ulimits.\n[containers]\ndefault_ulimits = []\n"
	if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
		return fmt.Errorf("podman config: %w", err)
	}
	e.env = append(e.env, "CONTAINERS_CONF="+conf)
	return nil
}

var defaultUlimitsRE = lazyre.New(`(?m)^\s*default_ulimits\s*=`)

func setsDefaultUlimits(file string) bool {
	b, err := os.ReadFile(file)
	return err == nil && defaultUlimitsRE.Get().Match(b)
}

// cmd is a command of the engine.
func (e *engine) cmd(args ...string) command {
	return command{name: e.path, args: append(append([]string{}, e.global...), args...), env: e.env}
}

// query runs a command whose output is data: stdout is returned, stderr
// too (for "no such ..."), neither goes to the log.
func (e *engine) query(s *session, args ...string) (stdout, stderr []byte, code int, err error) {
	var errBuf bytes.Buffer
	c := e.cmd(args...)
	c.stderr = &errBuf
	out, code, err := s.output(c)
	return out, errBuf.Bytes(), code, err
}

// imageID is the ID of a local image, "" if there is none.
func (e *engine) imageID(s *session, ref string) (string, error) {
	out, _, code, err := e.query(s, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", nil
	}
	return normalizeID(string(out)), nil
}

func normalizeID(id string) string {
	return strings.TrimPrefix(strings.TrimSpace(id), "sha256:")
}

// containerState is what the runner needs of an existing container.
type containerState struct {
	ID      string
	Running bool
	Config  string // the dtk.config label; "" if not dtk's
	Managed bool   // it carries dtk's labels
}

// inspect returns the container's state, nil if there is none.
func (e *engine) inspect(s *session, name string) (*containerState, error) {
	out, stderr, code, err := e.query(s, "container", "inspect", name)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		if bytes.Contains(bytes.ToLower(stderr), []byte("no such")) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s container inspect %s: exit %d: %s", e.name, name, code, strings.TrimSpace(string(stderr)))
	}
	var got []struct {
		ID    string `json:"Id"`
		State struct {
			Running bool
		}
		Config struct {
			Labels map[string]string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != 1 {
		return nil, fmt.Errorf("%s container inspect %s: unexpected output: %v", e.name, name, err)
	}
	c := got[0]
	_, managed := c.Config.Labels[LabelConfig]
	return &containerState{ID: c.ID, Running: c.State.Running, Config: c.Config.Labels[LabelConfig], Managed: managed}, nil
}

// remove stops (with the grace period) and removes a container.
func (e *engine) remove(s *session, name string, stopTimeout int) error {
	s.notef("removing container %s", name)
	for _, args := range [][]string{
		{"stop", "-t", strconv.Itoa(stopTimeout), name},
		{"rm", "-f", name},
	} {
		code, err := s.run(e.cmd(args...))
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("%s %s %s: exit %d", e.name, args[0], name, code)
		}
	}
	return nil
}

// Run creates or replaces (create, or any action but delete) or removes
// (delete) the container.
func (Container) Run(ctx context.Context, req Request) Result {
	// The engine runs as the agent; the user inside the container is the
	// image's or its command's. The agent's step_user does not apply.
	if req.Action.User != "" || req.Action.Group != "" {
		return fail("container: a container action takes no user or group: the engine runs containers as the agent does")
	}
	req.StepUser, req.StepGroup = "", ""
	s, err := newSession(ctx, req)
	if err != nil {
		return fail("container: %w", err)
	}
	spec, notes, err := parseContainerSpec(req)
	if err != nil {
		return s.failed(err)
	}
	for _, n := range notes {
		s.notef("%s", n)
	}
	eng, err := newEngine(req)
	if err != nil {
		return s.failed(err)
	}
	cur, err := eng.inspect(s, spec.Name)
	if err != nil {
		return s.failed(err)
	}
	if cur != nil && !cur.Managed {
		return s.failed(fmt.Errorf("a container named %s exists that dtk did not create (no %s label): remove it or set the attribute \"name\" to another name", spec.Name, LabelConfig))
	}
	outputs := map[string]string{"name": spec.Name, "engine": eng.name}
	if req.Name() == "delete" {
		if cur == nil {
			s.notef("container %s is absent", spec.Name)
			return s.finish(Result{State: OK, Outputs: outputs})
		}
		if req.DryRun {
			s.notef("would remove container %s", spec.Name)
			return s.finish(Result{State: Changed})
		}
		if err := eng.remove(s, spec.Name, spec.StopTimeout); err != nil {
			return s.failed(err)
		}
		return s.finish(Result{State: Changed, Outputs: outputs})
	}

	imageID, err := ensureImage(s, eng, spec)
	if err != nil {
		return s.failed(err)
	}
	if imageID == "" { // dry run, image not here yet
		s.notef("would create container %s after getting image %s", spec.Name, spec.Image)
		return s.finish(Result{State: Changed})
	}
	hash := configHash(spec, imageID, eng)
	outputs["image_id"] = imageID
	switch {
	case cur != nil && cur.Running && cur.Config == hash:
		s.notef("container %s is up to date", spec.Name)
		outputs["id"] = cur.ID
		return s.finish(Result{State: OK, Outputs: outputs})
	case req.DryRun:
		switch {
		case cur == nil:
			s.notef("would create container %s", spec.Name)
		case cur.Config != hash:
			s.notef("would replace container %s: its configuration or image changed", spec.Name)
		default:
			s.notef("would replace container %s: it is not running", spec.Name)
		}
		return s.finish(Result{State: Changed})
	case cur != nil:
		if err := eng.remove(s, spec.Name, spec.StopTimeout); err != nil {
			return s.failed(err)
		}
	}
	id, err := runContainer(s, eng, spec, hash)
	if err != nil {
		return s.failed(err)
	}
	outputs["id"] = id
	return s.finish(Result{State: Changed, Outputs: outputs})
}

// ensureImage makes the image present (loading image_archive or pulling
// it) and returns its ID; on a dry run it changes nothing and returns ""
// if the image would have to be loaded or pulled.
func ensureImage(s *session, eng *engine, spec containerSpec) (string, error) {
	local, err := eng.imageID(s, spec.Image)
	if err != nil {
		return "", err
	}
	if spec.ImageArchive != "" {
		archive, err := moduleFile(s.req, "image_archive", spec.ImageArchive)
		if err != nil {
			return "", err
		}
		want, err := archiveIDs.get(archive, spec.Image)
		if err != nil {
			return "", fmt.Errorf("image_archive %s: %w", spec.ImageArchive, err)
		}
		if local != "" && local == want {
			return local, nil
		}
		if s.req.DryRun {
			s.notef("would load image %s from %s", spec.Image, spec.ImageArchive)
			return "", nil
		}
		s.notef("loading image %s from %s", spec.Image, spec.ImageArchive)
		code, err := s.run(eng.cmd("load", "-i", archive))
		if err != nil {
			return "", err
		}
		if code != 0 {
			return "", fmt.Errorf("%s load -i %s: exit %d", eng.name, spec.ImageArchive, code)
		}
		if local, err = eng.imageID(s, spec.Image); err != nil {
			return "", err
		}
		if local == "" {
			return "", fmt.Errorf("image_archive %s does not hold image %s", spec.ImageArchive, spec.Image)
		}
		return local, nil
	}
	if local != "" || s.req.DryRun {
		return local, nil
	}
	s.notef("pulling image %s", spec.Image)
	code, err := s.run(eng.cmd("pull", spec.Image))
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("%s pull %s: exit %d (on an air-gapped site, ship the image in the module and set image_archive)", eng.name, spec.Image, code)
	}
	return eng.imageID(s, spec.Image)
}

// configHash covers everything that makes the container what it is.
func configHash(spec containerSpec, imageID string, eng *engine) string {
	b, _ := json.Marshal(struct {
		Spec     containerSpec
		ImageID  string
		RunFlags []string
	}{spec, imageID, eng.run})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// runContainer runs the container detached and returns its ID. The env
// values go through a file in the scratch folder, not the command line.
func runContainer(s *session, eng *engine, spec containerSpec, hash string) (string, error) {
	envFile := filepath.Join(s.req.ScratchDir, "container.env")
	var env strings.Builder
	for _, k := range sortedKeys(spec.Env) {
		fmt.Fprintf(&env, "%s=%s\n", k, spec.Env[k])
	}
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		return "", fmt.Errorf("env file: %w", err)
	}
	step := s.req.StepID
	if i := strings.LastIndexByte(step, '/'); i >= 0 {
		step = step[:i]
	}
	args := []string{"run", "--detach",
		"--name=" + spec.Name,
		"--label=" + LabelConfig + "=" + hash,
		"--label=" + LabelStep + "=" + step,
		"--restart=" + spec.Restart,
		"--stop-timeout=" + strconv.Itoa(spec.StopTimeout),
		"--env-file=" + envFile,
	}
	if spec.Network != "" {
		args = append(args, "--network="+spec.Network)
	}
	for _, p := range spec.Ports {
		args = append(args, "--publish="+p)
	}
	for _, v := range spec.Volumes {
		args = append(args, "--volume="+v)
	}
	args = append(args, eng.run...)
	args = append(args, spec.Image)
	args = append(args, spec.Command...)
	s.notef("running container %s from %s", spec.Name, spec.Image)
	out, code, err := s.output(eng.cmd(args...))
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("%s run %s: exit %d", eng.name, spec.Name, code)
	}
	id := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(id, '\n'); i >= 0 { // after pull progress
		id = id[i+1:]
	}
	return id, nil
}

// archiveIDCache remembers the image IDs read from tarballs, by file, size
// and modification time: a container's check runs on every reconcile
// interval, and manifest.json is usually at the end of the tarball.
type archiveIDCache struct {
	mu  sync.Mutex
	ids map[string]string
}

var archiveIDs archiveIDCache

// get is archiveImageID, remembered.
func (c *archiveIDCache) get(file, ref string) (string, error) {
	info, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s\x00%s\x00%d\x00%d", file, ref, info.Size(), info.ModTime().UnixNano())
	c.mu.Lock()
	id, ok := c.ids[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	if id, err = archiveImageID(file, ref); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil || len(c.ids) >= 256 { // module versions come and go
		c.ids = map[string]string{}
	}
	c.ids[key] = id
	return id, nil
}

// archiveImageID reads the ID of image ref from a docker-archive tarball
// (what `podman save` and `docker save` write; gzip allowed) without
// loading it: the ID is the digest of the image's config.
func archiveImageID(file, ref string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return "", errors.New("no manifest.json: not a docker-archive tarball (write it with podman save or docker save)")
		}
		if err != nil {
			return "", err
		}
		if path.Clean(hdr.Name) != "manifest.json" {
			continue
		}
		var manifest []struct {
			Config   string
			RepoTags []string
		}
		if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
			return "", fmt.Errorf("manifest.json: %w", err)
		}
		var tags []string
		for _, m := range manifest {
			for _, t := range m.RepoTags {
				if normalizeRef(t) == normalizeRef(ref) {
					return strings.TrimSuffix(path.Base(m.Config), ".json"), nil
				}
				tags = append(tags, t)
			}
		}
		return "", fmt.Errorf("holds %s, not image %s", strings.Join(tags, ", "), ref)
	}
}

// normalizeRef makes "busybox", "docker.io/library/busybox:latest" and
// "localhost/busybox:latest" compare equal.
func normalizeRef(ref string) string {
	for _, p := range []string{"docker.io/library/", "docker.io/", "localhost/"} {
		ref = strings.TrimPrefix(ref, p)
	}
	if i := strings.LastIndexAny(ref, ":/@"); i < 0 || ref[i] != ':' && ref[i] != '@' {
		ref += ":latest"
	}
	return ref
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
