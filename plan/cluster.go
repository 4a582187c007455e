package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf8"
)

// Keys of the clusters that do not describe a change.
const (
	// ClusterUnchanged holds the agents whose steps the next plan leaves
	// as they are (and, with predictions, that would run none of them).
	ClusterUnchanged = "unchanged"
	// ClusterCannotPredict holds the agents that did not predict every
	// one of their steps: no answer (yet), or an answer cut short.
	ClusterCannotPredict = "cannot-predict"
)

// Cluster is a group of agents on which a new plan makes the same change:
// the same steps added, removed or changed, the same attributes changing
// the same way (once the agent's own name is set aside), and, when the
// agents were asked (a dry run), the same predictions.
type Cluster struct {
	// Key names the change: ClusterUnchanged, ClusterCannotPredict, or
	// "c" and 16 hex digits of a digest of the change, the same for the
	// same change in any plan.
	Key string `json:"key"`
	// Summary says what changes, one line per step ("web/index: message
	// changes (Hello → Hi)", "web/site: port 8080 → 8081"); a value is
	// shown only when every agent of the cluster has the same, and a
	// sensitive one never.
	Summary []string `json:"summary"`
	// Agents are the agents' names, sorted.
	Agents []string `json:"agents"`
	// Predictions are the agents' predictions of the steps in Summary, by
	// "NODE/INSTANCE/ACTION" (NODE is the template node, without a group
	// member's name); nil without predictions.
	Predictions map[string]string `json:"predictions,omitempty"`
}

// nodeToken stands for the agent's own name in the values of its steps, so
// that "Hello from web-1" → "Hi from web-1" and "Hello from web-2" → "Hi
// from web-2" are one change.
const nodeToken = "{node}"

// Limits of what a summary line shows.
const (
	maxShownValue = 40
	maxShownEdit  = 30
)

// Clusters groups the agents of a service by the change that going from
// the plan old (nil: not deployed) to next makes on each, as Diff sees it,
// and, when predictions are given (agent → step ID → prediction, from a
// dry run), by what each agent predicted for its steps. An agent that has
// steps in next but not a prediction for each goes into the
// ClusterCannotPredict cluster. Steps unchanged in the plan count only when
// the agent predicts that it would run them. The clusters are sorted by
// size, largest first, changes before the nodes that cannot predict and
// the unchanged ones, then by Key; their agents by name. Clusters is pure
// and deterministic.
func Clusters(old, next *Plan, predictions map[string]map[string]string) []Cluster {
	prev := createSteps(old)
	type agentPlan struct {
		name  string
		steps []*Step // of next
		gone  []*Step // create steps of old that next drops without a delete step
	}
	var agents []*agentPlan
	byName := map[string]*agentPlan{}
	get := func(name string) *agentPlan {
		ap := byName[name]
		if ap == nil {
			ap = &agentPlan{name: name}
			byName[name] = ap
			agents = append(agents, ap)
		}
		return ap
	}
	seen := map[string]bool{}
	if next != nil {
		for _, np := range next.Nodes {
			ap := get(np.Agent)
			ap.steps = append(ap.steps, np.Steps...)
			for _, st := range np.Steps {
				seen[st.ID] = true
			}
		}
	}
	if old != nil {
		for _, np := range old.Nodes {
			for _, st := range np.Steps {
				if dropped(st, seen) {
					ap := get(np.Agent)
					ap.gone = append(ap.gone, st)
				}
			}
		}
	}

	reasons := rerunsOf(prev, next, predictions)

	type group struct {
		Cluster
		changes []stepChangeSig
		// varies marks the attribute changes (by position) whose full
		// values differ between the cluster's agents.
		varies map[[2]int]bool
	}
	groups := map[string]*group{}
	var order []*group
	for _, ap := range agents {
		var preds map[string]string
		if predictions != nil {
			preds = predictions[ap.name]
		}
		// sig is the change itself (groups are keyed by it, so that two
		// changes never share a group); key is its name.
		var key, sig string
		var changes []stepChangeSig
		if predictions != nil && !predictedAll(ap.steps, preds) {
			key, sig = ClusterCannotPredict, ClusterCannotPredict
		} else {
			for _, st := range ap.steps {
				if c, ok := describe(prev[st.ID], st, ap.name, preds, predictions != nil, reasons[st.ID]); ok {
					changes = append(changes, c)
				}
			}
			for _, st := range ap.gone {
				changes = append(changes, stepChangeSig{step: stepKey(st), label: stepLabel(st), kind: ChangeRemove})
			}
			slices.SortFunc(changes, func(a, b stepChangeSig) int {
				return cmp.Or(cmp.Compare(a.step, b.step), cmp.Compare(a.kind, b.kind))
			})
			key, sig = ClusterUnchanged, ClusterUnchanged
			if len(changes) > 0 {
				var b strings.Builder
				for _, c := range changes {
					b.WriteString(c.signature())
				}
				sig = b.String()
				sum := sha256.Sum256([]byte(sig))
				key = "c" + hex.EncodeToString(sum[:8])
			}
		}
		g := groups[sig]
		if g == nil {
			g = &group{Cluster: Cluster{Key: key}, changes: changes, varies: map[[2]int]bool{}}
			groups[sig] = g
			order = append(order, g)
		} else {
			for i, c := range changes {
				for j, a := range c.attrs {
					r := g.changes[i].attrs[j]
					if a.from != r.from || a.to != r.to {
						g.varies[[2]int{i, j}] = true
					}
				}
			}
		}
		g.Agents = append(g.Agents, ap.name)
	}

	out := make([]Cluster, 0, len(order))
	for _, g := range order {
		c := g.Cluster
		slices.Sort(c.Agents)
		switch c.Key {
		case ClusterCannotPredict:
			c.Summary = []string{"cannot predict: no answer"}
		case ClusterUnchanged:
			c.Summary = []string{"no change"}
		default:
			for i, ch := range g.changes {
				c.Summary = append(c.Summary, ch.line(func(j int) bool { return g.varies[[2]int{i, j}] }))
				if ch.pred != "" {
					if c.Predictions == nil {
						c.Predictions = map[string]string{}
					}
					c.Predictions[ch.step] = ch.pred
				}
			}
		}
		out = append(out, c)
	}
	SortClusters(out)
	return out
}

// PredictedReruns is Reruns for a dry run: the steps its plan (next)
// leaves unchanged from old that read an output of a step that runs, as
// the agents predicted (agent → step ID → prediction; nil: as the plan
// says).
func PredictedReruns(old, next *Plan, predictions map[string]map[string]string) map[string]string {
	return rerunsOf(createSteps(old), next, predictions)
}

// rerunsOf is PredictedReruns with old's create steps by ID. A step runs
// when the plan adds or changes it (without predictions) or its agent
// predicts it would change (it changes) or cannot predict it (it may).
func rerunsOf(prev map[string]*Step, next *Plan, predictions map[string]map[string]string) map[string]string {
	if next == nil {
		return nil
	}
	runs := map[string]bool{}
	for _, np := range next.Nodes {
		for _, st := range np.Steps {
			if predictions == nil {
				if k := stepChange(prev[st.ID], st); k == ChangeAdd || k == ChangeChange {
					runs[st.ID] = true
				}
				continue
			}
			switch predictions[np.Agent][st.ID] {
			case PredictChange:
				runs[st.ID] = true
			case PredictCannot:
				runs[st.ID] = false
			}
		}
	}
	return Reruns(next, runs)
}

// SortClusters sorts clusters as Clusters returns them: largest first;
// among clusters of a size, changes first, then the nodes that cannot
// predict, then the unchanged ones; then by Key (a digest: stable, not
// meaningful).
func SortClusters(cs []Cluster) {
	rank := func(c Cluster) int {
		switch c.Key {
		case ClusterCannotPredict:
			return 1
		case ClusterUnchanged:
			return 2
		}
		return 0
	}
	slices.SortFunc(cs, func(a, b Cluster) int {
		return cmp.Or(cmp.Compare(len(b.Agents), len(a.Agents)), cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Key, b.Key))
	})
}

// dropped says a create step of the current plan is gone from the next one
// (seen: the next plan's step IDs) without a delete step to undo it.
func dropped(st *Step, seen map[string]bool) bool {
	return st.Action == "create" && !seen[st.ID] && !seen[StepID(st.Service, st.Node, st.Instance, "delete")]
}

// predictedAll says every step has a prediction.
func predictedAll(steps []*Step, preds map[string]string) bool {
	for _, st := range steps {
		if preds[st.ID] == "" {
			return false
		}
	}
	return true
}

// stepChangeSig is one step's change on one agent, with the agent's own
// name replaced by nodeToken.
type stepChangeSig struct {
	step  string // TEMPLATENODE/INSTANCE/ACTION
	label string // TEMPLATENODE/INSTANCE
	kind  string // ChangeAdd, ChangeRemove, ChangeChange, ChangeRun or runsAgain
	comp  string // the component (added steps)
	attrs []attrChange
	// asset: the step changes but none of its attributes does.
	asset   bool
	waiting string
	pred    string
	// reason: a step unchanged in the plan runs because it reads an
	// output that changes (Reruns).
	reason string
}

// runsAgain is a step the plan leaves unchanged but that the agent
// predicts it would run (it has not converged it at this digest).
const runsAgain = "runs"

// attrChange is one attribute's change: its values before and after
// (JSON, "" when unset) and the edit between them (the tokens that differ,
// without the common beginning and end).
type attrChange struct {
	name              string
	sensitive         bool
	from, to          string
	editFrom, editTil string
}

func (c stepChangeSig) signature() string {
	var b strings.Builder
	for _, s := range []string{c.step, c.kind, c.comp, c.waiting, c.pred, c.reason} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	if c.asset {
		b.WriteString("asset")
	}
	for _, a := range c.attrs {
		b.WriteByte(1)
		b.WriteString(a.name)
		// The edit, not the whole value: the rest of the value is the
		// node's own (an address, a hostname) and no part of the change.
		// A sensitive value's change counts, not what it is.
		if !a.sensitive {
			b.WriteByte(2)
			b.WriteString(a.editFrom)
			b.WriteByte(3)
			b.WriteString(a.editTil)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// line is the summary line of a change; varies says which attribute
// changes have different values on the cluster's agents.
func (c stepChangeSig) line(varies func(int) bool) string {
	var s string
	switch c.kind {
	case ChangeAdd:
		s = "added (" + c.comp + ")"
	case ChangeRemove:
		s = "removed"
	case runsAgain:
		s = "unchanged in the plan, but not converged on the node: runs again"
	case ChangeRun:
		s = "unchanged in the plan, but may run: " + c.reason
	default:
		var parts []string
		for j, a := range c.attrs {
			parts = append(parts, a.describe(varies(j)))
		}
		if c.asset {
			parts = append(parts, "its action or module files change")
		}
		s = strings.Join(parts, ", ")
	}
	if c.waiting != "" && c.pred == "" {
		s += "; waits for " + c.waiting
	}
	if c.pred != "" {
		s += " — " + predictionText(c.pred)
	}
	return c.label + ": " + s
}

func (a attrChange) describe(varies bool) string {
	switch {
	case a.sensitive:
		return a.name + " changes (sensitive)"
	case a.to == "":
		return a.name + " unset or not known yet"
	case !varies && short(a.from, maxShownValue) && short(a.to, maxShownValue):
		if a.from == "" {
			return a.name + " set to " + a.to
		}
		return a.name + " " + a.from + " → " + a.to
	}
	f, t := strings.TrimSpace(a.editFrom), strings.TrimSpace(a.editTil)
	switch {
	case !short(f, maxShownEdit) || !short(t, maxShownEdit) || f == "" && t == "":
		return a.name + " changes"
	case f == "":
		return a.name + " changes (adds " + t + ")"
	case t == "":
		return a.name + " changes (drops " + f + ")"
	}
	return a.name + " changes (" + f + " → " + t + ")"
}

func short(s string, n int) bool {
	return utf8.RuneCountInString(s) <= n && !strings.ContainsAny(s, "\n\r")
}

// predictionText is how a summary line shows an agent's prediction.
func predictionText(p string) string {
	switch p {
	case PredictCannot:
		return "would run (cannot predict)"
	case PredictNoChange:
		return "predicted: no change"
	}
	return p
}

// describe is the change a step of the next plan makes on agent (prev: the
// create step of the same ID in the current plan), and whether it makes
// one at all.
func describe(prev, st *Step, agent string, preds map[string]string, predicting bool, reason string) (stepChangeSig, bool) {
	c := stepChangeSig{step: stepKey(st), label: stepLabel(st), kind: stepChange(prev, st), comp: st.Component}
	if predicting {
		c.pred = normalize(preds[st.ID], agent)
	}
	if c.kind == ChangeUnchanged && reason != "" {
		// The agent predicted the step as the plan has it now; the
		// output it reads arrives later in the deploy.
		c.kind, c.reason = ChangeRun, normalize(reason, agent)
		if c.pred == PredictUnchangedPlan {
			c.pred = ""
		}
	}
	if c.kind == ChangeUnchanged {
		if !predicting || c.pred == PredictUnchangedPlan {
			return c, false
		}
		c.kind = runsAgain
	}
	if c.kind != ChangeAdd {
		c.comp = ""
	}
	if len(st.Waiting) > 0 {
		ws := make([]string, len(st.Waiting))
		for i, w := range st.Waiting {
			ws[i] = normalize(w, agent)
		}
		c.waiting = strings.Join(ws, "; ")
	}
	if c.kind == ChangeChange {
		sensitive := map[string]bool{}
		for _, s := range append(slices.Clip(prev.Sensitive), st.Sensitive...) {
			sensitive[s] = true
		}
		for _, name := range changedAttributes(prev, st) {
			a := attrChange{name: name, sensitive: sensitive[name]}
			if !a.sensitive {
				a.from = normalize(string(prev.Attributes[name]), agent)
				a.to = normalize(string(st.Attributes[name]), agent)
				a.editFrom, a.editTil = edit(a.from, a.to)
			}
			c.attrs = append(c.attrs, a)
		}
		c.asset = len(c.attrs) == 0
	}
	return c, true
}

// stepKey is a step's ID without the service and a group member's name:
// "web/index/create" for "site/web[a1]/index/create".
func stepKey(st *Step) string {
	return stepLabel(st) + "/" + st.Action
}

func stepLabel(st *Step) string {
	node := st.Node
	if i := strings.IndexByte(node, '['); i >= 0 {
		node = node[:i]
	}
	return node + "/" + st.Instance
}

// normalize replaces the agent's name, where it stands as a word of its
// own, with nodeToken.
func normalize(s, agent string) string {
	if agent == "" || !strings.Contains(s, agent) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], agent)
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		end := j + len(agent)
		if (j == 0 || !nameByte(s[j-1])) && (end == len(s) || !nameByte(s[end])) {
			b.WriteString(s[i:j])
			b.WriteString(nodeToken)
			i = end
			continue
		}
		b.WriteString(s[i : j+1])
		i = j + 1
	}
	return b.String()
}

// nameByte is a byte that may be part of a node name: "web-1.example"
// holds the name web-1, "web-10" does not.
func nameByte(c byte) bool {
	return c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// edit is what changes between two values: the tokens left when their
// common first and last tokens are taken away. A token is a run of
// whitespace, one delimiter (quote, bracket, comma, ...) or a run of
// anything else ("8080", "10.0.0.5", "web-1.example").
func edit(a, b string) (string, string) {
	ta, tb := tokens(a), tokens(b)
	p := 0
	for p < len(ta) && p < len(tb) && ta[p] == tb[p] {
		p++
	}
	s := 0
	for s < len(ta)-p && s < len(tb)-p && ta[len(ta)-1-s] == tb[len(tb)-1-s] {
		s++
	}
	return strings.Join(ta[p:len(ta)-s], ""), strings.Join(tb[p:len(tb)-s], "")
}

func tokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i + 1
		switch c := s[i]; {
		case isSpace(c):
			for j < len(s) && isSpace(s[j]) {
				j++
			}
		case strings.IndexByte(delimiters, c) >= 0:
		default:
			for j < len(s) && !isSpace(s[j]) && strings.IndexByte(delimiters, s[j]) < 0 {
				j++
			}
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

const delimiters = "\"'`,;()[]{}<>="

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
