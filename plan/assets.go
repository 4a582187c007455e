package plan

import (
	"encoding/json"
	"path"
)

// Assets lists the module paths (files or folders) an action reads, so
// that a step's digest changes when, and only when, one of them changes.
func (a *Action) Assets() []string {
	var out []string
	add := func(p string) {
		if p != "" && !path.IsAbs(p) {
			out = append(out, path.Clean(p))
		}
	}
	add(a.Script)
	add(a.Program)
	add(a.Manifest)
	add(a.Playbook)
	if a.Playbook != "" {
		// A playbook reads the module's roles and collections too.
		add("roles")
		add("collections")
	}
	if a.Role != "" {
		add("roles/" + a.Role)
	}
	for _, arg := range a.Args {
		add(arg) // an argument naming a module file makes it an asset
	}
	switch {
	case a.ModulePath != "":
		add(a.ModulePath)
	case a.Kind == "puppet":
		add("modules")
	}
	return out
}

// attributeFiles lists module files named by string attributes (a
// container's image_archive, a config template): the step depends on
// their content too.
func attributeFiles(attrs map[string]json.RawMessage, files map[string]string) map[string]string {
	out := map[string]string{}
	for _, raw := range attrs {
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" {
			continue
		}
		s = path.Clean(s)
		if d, ok := files[s]; ok {
			out[s] = d
		}
	}
	return out
}
