package actions

import (
	"bufio"
	"os"
	"strings"
)

// Predictor is a runner whose dry run (Request.DryRun) predicts whether a
// real run would change anything: Puppet's --noop, Ansible's --check, the
// container runner's comparison. A check of such a kind runs as a dry run
// (it must not converge), and "changed" is drift. Runners that are not
// predictors (bash, exec) report CannotPredict on a dry run; their checks
// run for real and drift is a failure.
type Predictor interface {
	Predicts() bool
}

// CanPredict says whether r's dry run predicts.
func CanPredict(r Runner) bool {
	p, ok := r.(Predictor)
	return ok && p.Predicts()
}

var (
	_ Predictor = (*Puppet)(nil)
	_ Predictor = (*Ansible)(nil)
	_ Predictor = (*Container)(nil)
)

// Predicts is true: --noop reports resources out of sync.
func (Puppet) Predicts() bool { return true }

// Predicts is true: --check --diff reports changed tasks.
func (Ansible) Predicts() bool { return true }

// Predicts is true: the container, its configuration hash and image are
// compared.
func (Container) Predicts() bool { return true }

// Bounds of Result.Changes.
const (
	maxChanges    = 20
	maxChangeLine = 512
)

// changeFinders read, from the output log of a dry run that predicted a
// change, what would change: one line each.
var changeFinders = map[string]func(sc *bufio.Scanner) []string{
	"puppet":    puppetChanges,
	"ansible":   ansibleChanges,
	"container": containerChanges,
}

// dryRunChanges reads the changes a dry run of kind predicted from its
// output log (whole and redacted, where the tail may have lost the start).
func dryRunChanges(kind, logFile string) []string {
	find := changeFinders[kind]
	if find == nil {
		return nil
	}
	f, err := os.Open(logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return find(sc)
}

// addChange appends line to out, trimmed, within the bounds; it says
// whether there is room for more.
func addChange(out *[]string, line string) bool {
	if len(*out) >= maxChanges {
		return false
	}
	if len(line) > maxChangeLine {
		line = strings.ToValidUTF8(line[:maxChangeLine], "") + "..."
	}
	*out = append(*out, line)
	return len(*out) < maxChanges
}

// puppetChanges are the events of a --noop run:
// "/Stage[main]/Ntp::Config/File[/etc/ntp.conf]/content: current_value
// '{md5}...', should be '{md5}...' (noop)". The "Would have triggered"
// lines of classes and stages, which follow from those, are left out.
func puppetChanges(sc *bufio.Scanner) []string {
	var out []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasSuffix(line, "(noop)") {
			continue
		}
		if !addChange(&out, strings.TrimPrefix(line, "Notice: ")) {
			break
		}
	}
	return out
}

// ansibleChanges are the tasks and handlers of a --check run that would
// change: "task [NAME]: changed", read from the default output ("TASK
// [NAME] ***" then "changed: [localhost]").
func ansibleChanges(sc *bufio.Scanner) []string {
	var out []string
	task := ""
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"TASK [", "RUNNING HANDLER ["} {
			if rest, ok := strings.CutPrefix(line, p); ok {
				if i := strings.LastIndex(rest, "]"); i >= 0 {
					task = strings.ToLower(strings.TrimSuffix(p, " [")) + " [" + rest[:i] + "]"
				}
			}
		}
		if strings.HasPrefix(line, "changed: [") && task != "" {
			if !addChange(&out, strings.Replace(task, "running handler", "handler", 1)+": changed") {
				break
			}
			task = "" // a loop's items change one task once
		}
	}
	return out
}

// containerChanges are the runner's own "would ..." notes.
func containerChanges(sc *bufio.Scanner) []string {
	var out []string
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "dtk: would "); ok {
			if !addChange(&out, "would "+rest) {
				break
			}
		}
	}
	return out
}
