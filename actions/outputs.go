package actions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ChangedKey is the reserved output by which an asset says whether it
// changed anything: "_changed=false" (or {"_changed": false}) makes a
// successful run OK instead of Changed. Other keys starting with "_" are
// reserved.
const ChangedKey = "_changed"

// validOutputKey reports whether k can name an output: letters, digits,
// '_', '.' and '-', starting with a letter or '_' (the rule
// `^[A-Za-z_][A-Za-z0-9_.-]*$`; checked by hand, as validEnvName).
func validOutputKey(k string) bool { return validIdent(k, "_.-") }

// parseOutputs reads an outputs file: a JSON object, or lines of
// key=value (blank lines and lines starting with # are skipped; a later
// key wins). JSON strings are taken as is, other JSON values as their
// compact JSON text.
func parseOutputs(b []byte) (map[string]string, *bool, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, nil, nil
	}
	out := map[string]string{}
	if trimmed[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		for k, raw := range obj {
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return nil, nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = EnvValue(buf.Bytes())
		}
	} else {
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, nil, fmt.Errorf("line %d: want key=value, got %q", i+1, line)
			}
			out[strings.TrimSpace(k)] = v
		}
	}
	var changed *bool
	for k, v := range out {
		if !validOutputKey(k) {
			return nil, nil, fmt.Errorf("invalid output name %q: names are letters, digits, _, . and -, not starting with a digit", k)
		}
		if !strings.HasPrefix(k, "_") {
			continue
		}
		if k != ChangedKey {
			return nil, nil, fmt.Errorf("output name %q is reserved (names starting with _ are dtk's; %s is the only one defined)", k, ChangedKey)
		}
		switch v {
		case "true":
			changed = new(true)
		case "false":
			changed = new(false)
		default:
			return nil, nil, fmt.Errorf("%s must be true or false, got %q", ChangedKey, v)
		}
		delete(out, k)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, changed, nil
}
