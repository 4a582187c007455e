package actions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

const sitePlaybook = `- hosts: all
  gather_facts: false
  tasks:
    - name: the page
      copy:
        dest: "{{ path }}"
        content: "hello {{ greeting }} on port {{ http_port }}\n"
    - name: outputs that change nothing
      set_stats:
        data:
          url: "http://{{ dtk_node }}:{{ http_port }}/"
          port: "{{ http_port }}"
    - name: outputs through the file
      copy:
        dest: "{{ dtk_outputs }}"
        content: "path={{ path }}\n"
`

// Proves: first run changes, second is unchanged, --check predicts without
// changing, a hand edit (drift) is repaired, outputs come back from
// set_stats and the outputs file.
func TestAnsible_Run_Playbook(t *testing.T) {
	needTool(t, "ansible-playbook", "ansible-core")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"site.yml": sitePlaybook})
	target := filepath.Join(t.TempDir(), "page")
	req := request(t, dir, plan.Action{Kind: "ansible", Playbook: "site.yml"},
		map[string]any{"path": target, "greeting": "hi", "http_port": 8080})

	res := run(t, req)
	wantState(t, res, Changed)
	if got := readFile(t, target); got != "hello hi on port 8080\n" {
		t.Fatalf("file = %q", got)
	}
	if res.Outputs["url"] != "http://web:8080/" || res.Outputs["path"] != target || res.Outputs["port"] != "8080" {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if !strings.Contains(res.Output, "PLAY RECAP") {
		t.Errorf("output lacks the recap: %q", res.Output)
	}

	res = run(t, req)
	wantState(t, res, OK)

	req.Attributes = attrs(t, map[string]any{"path": target, "greeting": "bonjour", "http_port": 8080})
	dry := req
	dry.DryRun = true
	wantState(t, run(t, dry), Changed)
	if got := readFile(t, target); got != "hello hi on port 8080\n" {
		t.Fatalf("dry run changed the file: %q", got)
	}
	wantState(t, run(t, req), Changed)
	if got := readFile(t, target); got != "hello bonjour on port 8080\n" {
		t.Fatalf("file = %q", got)
	}
	dry.Attributes = req.Attributes
	wantState(t, run(t, dry), OK)

	if err := os.WriteFile(target, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantState(t, run(t, req), Changed)
	if got := readFile(t, target); got != "hello bonjour on port 8080\n" {
		t.Fatalf("drift not repaired: %q", got)
	}
}

// Proves: a role from the module's roles/ folder runs with the attributes
// over its defaults; failures are Failed; a sensitive value stays out of
// the output and the process list.
func TestAnsible_Run_Role(t *testing.T) {
	needTool(t, "ansible-playbook", "ansible-core")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"roles/web/defaults/main.yml": "greeting: hello\nhttp_port: 80\n",
		"roles/web/tasks/main.yml": `- copy:
    dest: "{{ path }}"
    content: "{{ greeting }} {{ http_port }}\n"
`,
		"roles/broken/tasks/main.yml": "- fail: {msg: broken on purpose}\n",
		"roles/vault/tasks/main.yml": `- debug: {msg: "the password is {{ password }}"}
- shell: S="$password" bash {{ dtk_module_dir }}/scan.sh {{ scan }}
  changed_when: false
`,
		"scan.sh": scanScript,
	})
	target := filepath.Join(t.TempDir(), "web.conf")
	req := request(t, dir, plan.Action{Kind: "ansible", Role: "web"}, map[string]any{"path": target, "http_port": 8080})
	wantState(t, run(t, req), Changed)
	if got := readFile(t, target); got != "hello 8080\n" {
		t.Fatalf("file = %q", got)
	}
	wantState(t, run(t, req), OK)

	res := run(t, request(t, dir, plan.Action{Kind: "ansible", Role: "broken"}, nil))
	wantState(t, res, Failed)
	if res.ExitCode != 2 || !strings.Contains(res.Output, "broken on purpose") {
		t.Errorf("exit %d, output %q", res.ExitCode, res.Output)
	}

	const secret = "ansible-Secret-8Kp"
	scan := filepath.Join(t.TempDir(), "scan")
	req = request(t, dir, plan.Action{Kind: "ansible", Role: "vault"}, map[string]any{"password": secret, "scan": scan})
	req.Sensitive = []string{"password"}
	res = run(t, req)
	wantState(t, res, OK)
	if strings.Contains(res.Output, secret) || !strings.Contains(res.Output, "the password is (sensitive)") {
		t.Errorf("output = %q", res.Output)
	}
	if got := strings.TrimSpace(readFile(t, scan)); got != "clean" {
		t.Errorf("scan: %s", got)
	}
}

func TestRecapScanner(t *testing.T) {
	var r recapScanner
	for _, chunk := range []string{"TASK [x] changed=9\nPLAY RE", "CAP ****\nlocalhost : ok=2    chan", "ged=3    unreachable=0\nother : ok=1 changed=1\n"} {
		r.Write([]byte(chunk))
	}
	if n, err := r.changed(); n != 4 || err != nil {
		t.Errorf("changed = %d, %v", n, err)
	}
}

// Proves: an attribute left unset (null) is not an extra var, so the role's
// own default (defaults/main.yml) applies; one that is set wins over it.
func TestAnsible_Run_NullKeepsRoleDefault(t *testing.T) {
	needTool(t, "ansible-playbook", "ansible-core")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"roles/motd/defaults/main.yml": "motd_text: from the role default\n",
		"roles/motd/tasks/main.yml": `- copy:
    dest: "{{ path }}"
    content: "{{ motd_text }}\n"
`,
	})
	target := filepath.Join(t.TempDir(), "motd")
	act := plan.Action{Kind: "ansible", Role: "motd"}
	wantState(t, run(t, request(t, dir, act, map[string]any{"path": target, "motd_text": nil})), Changed)
	if got := readFile(t, target); got != "from the role default\n" {
		t.Fatalf("unset attribute: file = %q, want the role default", got)
	}
	wantState(t, run(t, request(t, dir, act, map[string]any{"path": target, "motd_text": "set by the instance"})), Changed)
	if got := readFile(t, target); got != "set by the instance\n" {
		t.Fatalf("set attribute: file = %q", got)
	}
}

// Proves: with params, a role gets exactly the mapped variables: a renamed
// one, one computed from attributes, and a null one left out (the role
// default applies); attributes not mapped are not variables.
func TestAnsible_Run_RoleParams(t *testing.T) {
	needTool(t, "ansible-playbook", "ansible-core")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"roles/motd/defaults/main.yml": "motd_text: default text\nmotd_owner: default owner\n",
		"roles/motd/tasks/main.yml": `- copy:
    dest: "{{ motd_path }}"
    content: "{{ motd_text }} / {{ motd_owner }} / {{ note | default('note is no variable') }}\n"
`,
	})
	out := t.TempDir()
	act := plan.Action{Kind: "ansible", Role: "motd", Params: map[string]plan.Expr{
		"motd_path":  {Source: `"${dir}/motd"`},
		"motd_text":  {Source: "upper(text)"},
		"motd_owner": {Source: "owner"},
	}}
	req := request(t, dir, act, map[string]any{"dir": out, "text": "hello", "owner": nil, "note": "a helper"})
	wantState(t, run(t, req), Changed)
	if got := readFile(t, filepath.Join(out, "motd")); got != "HELLO / default owner / note is no variable\n" {
		t.Fatalf("motd = %q", got)
	}
}
