package actions

import (
	"encoding/json"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Redacted replaces a sensitive value in output.
const Redacted = "(sensitive)"

// sensitiveValues lists the texts to redact for req's sensitive
// attributes, longest first: a string's value; a number's JSON text; for
// a list or map, its JSON text and every string or number inside it. Null
// and booleans are not redacted (there is nothing secret in "true").
func sensitiveValues(req Request) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			add(v)
			// A JSON-escaped form shows up when an asset prints JSON.
			if b, err := json.Marshal(v); err == nil {
				add(strings.Trim(string(b), `"`))
			}
		case json.Number:
			add(v.String())
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, raw := range sensitiveRaw(req) {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			add(string(raw))
			continue
		}
		switch v.(type) {
		case []any, map[string]any:
			add(string(raw))
		}
		walk(v)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// sensitiveRaw lists the JSON values of req's sensitive attributes and of
// the params computed from them (params of the action: see passedParams),
// whose text may differ ("${password}-suffix", upper(password)).
func sensitiveRaw(req Request) []json.RawMessage {
	var out []json.RawMessage
	for _, name := range req.Sensitive {
		if raw, ok := req.Attributes[name]; ok {
			out = append(out, raw)
		}
	}
	if len(out) == 0 || req.Action.Params == nil {
		return out
	}
	params, err := passedParams(req)
	if err != nil {
		return out
	}
	for name, raw := range params {
		for _, attr := range req.Action.ParamAttributes(name) {
			if slices.Contains(req.Sensitive, attr) {
				out = append(out, raw)
				break
			}
		}
	}
	return out
}

// redact replaces every secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return s
}

// redactor is a writer that replaces secrets in the stream before passing
// it on. A secret split across two writes is still found: the last
// len(longest secret)-1 bytes are held back until more arrives or Flush.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string // longest first
	hold    int
	pending []byte
}

func newRedactor(w io.Writer, secrets []string) *redactor {
	r := &redactor{w: w, secrets: secrets}
	if len(secrets) > 0 {
		r.hold = len(secrets[0]) - 1
	}
	return r
}

func (r *redactor) Write(p []byte) (int, error) {
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p...)
	if err := r.drain(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back.
func (r *redactor) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drain(true)
}

// drain writes out pending with secrets replaced, keeping back (unless
// final) what could be the start of a secret not yet wholly written.
func (r *redactor) drain(final bool) error {
	var out []byte
	for {
		// The earliest occurrence of any secret; the longest on a tie.
		at, n := -1, 0
		for _, sec := range r.secrets {
			if i := strings.Index(string(r.pending), sec); i >= 0 && (at < 0 || i < at) {
				at, n = i, len(sec)
			}
		}
		// A longer secret may start at the same place and not have
		// arrived whole yet.
		if at < 0 || (!final && at+r.hold >= len(r.pending)) {
			break
		}
		out = append(out, r.pending[:at]...)
		out = append(out, Redacted...)
		r.pending = r.pending[at+n:]
	}
	keep := r.hold
	if final {
		keep = 0
	}
	// No secret starts before safe: one that did would end within pending
	// and have been replaced.
	if safe := len(r.pending) - keep; safe > 0 {
		out = append(out, r.pending[:safe]...)
		r.pending = append([]byte(nil), r.pending[safe:]...)
	}
	if len(out) == 0 {
		return nil
	}
	_, err := r.w.Write(out)
	return err
}
