package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// Shell completion, generated from the kong model (the command tree in
// main.go): kong has none built in, and the libraries that add it
// (willabides/kongplete, jotaen/kong-completion) wrap posener/complete,
// which makes the binary answer completions at every <TAB> and writes to
// shell rc files to install itself. A static script per shell, printed by
// `dtkctl completion SHELL`, needs nothing at run time and is what
// packages install (`make completions`).

// CompletionCmd is `dtkctl completion bash|zsh|fish`.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell to print the completion script for: bash, zsh or fish."`
}

// Help is the detail of `completion --help`.
func (CompletionCmd) Help() string {
	return `Prints a completion script for the shell: commands, flags, the values of flags that take a fixed set, and files and folders where an argument is one. The .deb and .rpm packages install these scripts already.

Examples:
  dtkctl completion bash > /etc/bash_completion.d/dtkctl
  source <(dtkctl completion bash)    # bash, this shell only
  dtkctl completion zsh > "${fpath[1]}/_dtkctl"    # then start a new zsh
  dtkctl completion fish > ~/.config/fish/completions/dtkctl.fish`
}

// Run prints the script.
func (c *CompletionCmd) Run(kctx *kong.Context, out *Output) error {
	m := completionModel(kctx.Model)
	switch c.Shell {
	case "bash":
		out.Printf("%s", m.bash())
	case "zsh":
		out.Printf("%s", m.zsh())
	case "fish":
		out.Printf("%s", m.fish())
	}
	return nil
}

// compCommand is one command of the tree, by its path ("" for dtkctl
// itself, "service/deploy").
type compCommand struct {
	path  string
	help  string
	subs  []compSub
	flags []compFlag
	args  string // what the positional arguments are: "file", "dir" or ""
}

type compSub struct{ name, help string }

type compFlag struct {
	long   string
	short  rune
	help   string
	takes  bool     // takes a value
	values []string // the value's fixed set (enum)
	kind   string   // the value is a "file" or "dir"
}

type compModel struct {
	app  string
	cmds []compCommand // in tree order, the root first
	// global flags apply at every level.
	global []compFlag
}

func completionModel(app *kong.Application) *compModel {
	m := &compModel{app: app.Name}
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		c := compCommand{path: path, help: n.Help}
		for _, ch := range n.Children {
			if ch.Hidden || ch.Type != kong.CommandNode {
				continue
			}
			c.subs = append(c.subs, compSub{ch.Name, ch.Help})
		}
		for _, f := range n.Flags {
			if f.Hidden {
				continue
			}
			cf := compFlag{long: f.Name, short: f.Short, help: f.Help, takes: !f.IsBool() && !f.IsCounter(), kind: valueKind(f.Value)}
			if f.Enum != "" {
				cf.values = f.EnumSlice()
			}
			if path == "" {
				m.global = append(m.global, cf)
			} else {
				c.flags = append(c.flags, cf)
			}
		}
		for _, p := range n.Positional {
			if k := valueKind(p); k != "" && c.args == "" {
				c.args = k
			}
		}
		m.cmds = append(m.cmds, c)
		for _, ch := range n.Children {
			if ch.Hidden || ch.Type != kong.CommandNode {
				continue
			}
			walk(ch, strings.TrimPrefix(path+"/"+ch.Name, "/"))
		}
	}
	walk(app.Node, "")
	return m
}

// valueKind says whether a flag's or argument's value is a file or a
// folder, from its kong type or its placeholder.
func valueKind(v *kong.Value) string {
	ph := ""
	if v.Tag != nil {
		ph = v.Tag.PlaceHolder
		switch v.Tag.Type {
		case "existingdir":
			return "dir"
		case "path", "existingfile":
			return "file"
		}
	}
	if v.Flag != nil {
		ph = v.Flag.PlaceHolder
	}
	switch ph {
	case "DIR":
		return "dir"
	case "FILE":
		return "file"
	}
	return ""
}

// valueFlags are the flags anywhere in the tree that take a value, so that
// a completer can skip the word after them.
func (m *compModel) valueFlags() []string {
	seen := map[string]bool{}
	add := func(fs []compFlag) {
		for _, f := range fs {
			if f.takes {
				seen["--"+f.long] = true
				if f.short != 0 {
					seen["-"+string(f.short)] = true
				}
			}
		}
	}
	add(m.global)
	for _, c := range m.cmds {
		add(c.flags)
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func (m *compModel) paths() []string {
	out := make([]string, 0, len(m.cmds))
	for _, c := range m.cmds {
		if c.path != "" {
			out = append(out, c.path)
		}
	}
	return out
}

// shData is the part of the bash and zsh scripts that describes the tree:
// functions that print, for a command path, its subcommands, its flags and
// what its arguments are, and for a flag, its values ("__file", "__dir"
// for files and folders). Plain `case` statements, which both shells read.
func (m *compModel) shData(fn string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s_cmds=%q\n", fn, " "+strings.Join(m.paths(), " ")+" ")
	fmt.Fprintf(&b, "%s_valflags=%q\n\n", fn, " "+strings.Join(m.valueFlags(), " ")+" ")
	fmt.Fprintf(&b, "%s_subs() {\n  case \"$1\" in\n", fn)
	for _, c := range m.cmds {
		if len(c.subs) == 0 {
			continue
		}
		names := make([]string, len(c.subs))
		for i, s := range c.subs {
			names[i] = s.name
		}
		fmt.Fprintf(&b, "    %q) echo %q ;;\n", c.path, strings.Join(names, " "))
	}
	b.WriteString("  esac\n}\n\n")
	globals := flagWords(m.global)
	fmt.Fprintf(&b, "%s_flags() {\n  case \"$1\" in\n", fn)
	for _, c := range m.cmds {
		fmt.Fprintf(&b, "    %q) echo %q ;;\n", c.path, strings.TrimSpace(strings.Join(flagWords(c.flags), " ")+" "+strings.Join(globals, " ")))
	}
	b.WriteString("  esac\n}\n\n")
	fmt.Fprintf(&b, "%s_args() {\n  case \"$1\" in\n", fn)
	for _, c := range m.cmds {
		if c.args != "" {
			fmt.Fprintf(&b, "    %q) echo %q ;;\n", c.path, "__"+c.args)
		}
	}
	b.WriteString("  esac\n}\n\n")
	// A flag's values: per command path, then global.
	fmt.Fprintf(&b, "%s_values() { # PATH FLAG\n  case \"$1 $2\" in\n", fn)
	for _, c := range m.cmds {
		for _, f := range c.flags {
			if v := flagValues(f); v != "" {
				fmt.Fprintf(&b, "    %q) echo %q ;;\n", c.path+" --"+f.long, v)
			}
		}
	}
	for _, f := range m.global {
		if v := flagValues(f); v != "" {
			fmt.Fprintf(&b, "    *\" --%s\") echo %q ;;\n", f.long, v)
		}
	}
	b.WriteString("  esac\n}\n\n")
	// The command path of the words typed so far (after the program name).
	fmt.Fprintf(&b, `%[1]s_path() { # WORDS...
  local p="" skip="" w
  for w in "$@"; do
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$w" in
      --*=*) ;;
      -*) case "$%[1]s_valflags" in *" $w "*) skip=1 ;; esac ;;
      *) case "$%[1]s_cmds" in *" ${p:+$p/}$w "*) p="${p:+$p/}$w" ;; esac ;;
    esac
  done
  echo "$p"
}
`, fn)
	return b.String()
}

func flagWords(fs []compFlag) []string {
	var out []string
	for _, f := range fs {
		out = append(out, "--"+f.long)
	}
	return out
}

func flagValues(f compFlag) string {
	switch {
	case len(f.values) > 0:
		return strings.Join(f.values, " ")
	case f.kind != "":
		return "__" + f.kind
	}
	return ""
}

func (m *compModel) bash() string {
	fn := "_" + m.app
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s; generated by `%s completion bash`.\n\n", m.app, m.app)
	b.WriteString(m.shData(fn))
	fmt.Fprintf(&b, `
%[1]s() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local path words
  path=$(%[1]s_path "${COMP_WORDS[@]:1:COMP_CWORD-1}")
  COMPREPLY=()
  # The value of a flag: after "--flag " or in "--flag=...".
  local flag="" val="$cur"
  case "$cur" in
    --*=*) flag="${cur%%%%=*}"; val="${cur#*=}" ;;
    *) case "$%[1]s_valflags" in *" $prev "*) flag="$prev" ;; esac ;;
  esac
  if [ -n "$flag" ]; then
    words=$(%[1]s_values "$path" "$flag")
    case "$words" in
      __file) COMPREPLY=($(compgen -f -- "$val")) ;;
      __dir) COMPREPLY=($(compgen -d -- "$val")) ;;
      *) COMPREPLY=($(compgen -W "$words" -- "$val")) ;;
    esac
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(%[1]s_flags "$path")" -- "$cur"))
    return 0
  fi
  words=$(%[1]s_subs "$path")
  if [ -n "$words" ]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
  fi
  case "$(%[1]s_args "$path")" in
    __file) COMPREPLY=($(compgen -f -- "$cur")) ;;
    __dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
  esac
  return 0
}
complete -o filenames -o bashdefault -F %[1]s %[2]s
`, fn, m.app)
	return b.String()
}

func (m *compModel) zsh() string {
	fn := "_" + m.app
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s; generated by `%s completion zsh`.\n\n", m.app, m.app, m.app)
	b.WriteString(m.shData(fn))
	fmt.Fprintf(&b, `
%[1]s() {
  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" path flag="" vals
  path=$(%[1]s_path "${(@)words[2,CURRENT-1]}")
  case "$cur" in
    --*=*) flag="${cur%%%%=*}"; compset -P '*=' ;;
    *) case "$%[1]s_valflags" in *" $prev "*) flag="$prev" ;; esac ;;
  esac
  if [[ -n "$flag" ]]; then
    vals=$(%[1]s_values "$path" "$flag")
    case "$vals" in
      __file) _files ;;
      __dir) _files -/ ;;
      ?*) compadd -- ${=vals} ;;
    esac
    return
  fi
  if [[ "$cur" == -* ]]; then
    compadd -- ${=$(%[1]s_flags "$path")}
    return
  fi
  vals=$(%[1]s_subs "$path")
  if [[ -n "$vals" ]]; then
    compadd -- ${=vals}
    return
  fi
  case "$(%[1]s_args "$path")" in
    __file) _files ;;
    __dir) _files -/ ;;
  esac
}

if [[ "$funcstack[1]" == "%[1]s" ]]; then
  %[1]s "$@"
else
  compdef %[1]s %[2]s
fi
`, fn, m.app)
	return b.String()
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (m *compModel) fish() string {
	fn := "__" + m.app
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s; generated by `%s completion fish`.\n\n", m.app, m.app)
	fmt.Fprintf(&b, "set -g %s_cmds %s\n", fn, strings.Join(m.paths(), " "))
	fmt.Fprintf(&b, "set -g %s_valflags %s\n\n", fn, strings.Join(m.valueFlags(), " "))
	fmt.Fprintf(&b, `# The command path of the words typed so far ("service/deploy").
function %[1]s_path
    set -l p ""
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '--*=*'
                continue
            case '-*'
                if contains -- $w $%[1]s_valflags
                    set skip 1
                end
                continue
        end
        set -l cand $w
        if test -n "$p"
            set cand "$p/$w"
        end
        if contains -- $cand $%[1]s_cmds
            set p $cand
        end
    end
    echo $p
end

function %[1]s_at
    test (%[1]s_path) = "$argv[1]"
end

complete -c %[2]s -f
`, fn, m.app)
	flag := func(cond string, f compFlag) {
		line := fmt.Sprintf("complete -c %s", m.app)
		if cond != "" {
			line += " -n " + fishQuote(cond)
		}
		line += " -l " + f.long
		if f.short != 0 {
			line += " -s " + string(f.short)
		}
		switch {
		case len(f.values) > 0:
			line += " -x -a " + fishQuote(strings.Join(f.values, " "))
		case f.kind != "":
			line += " -r -F"
		case f.takes:
			line += " -x"
		}
		line += " -d " + fishQuote(firstSentence(f.help))
		b.WriteString(line + "\n")
	}
	for _, f := range m.global {
		flag("", f)
	}
	for _, c := range m.cmds {
		cond := fmt.Sprintf("%s_at %s", fn, fishQuote(c.path))
		if c.path == "" {
			cond = fn + "_at ''"
		}
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c %s -n %s -a %s -d %s\n", m.app, fishQuote(cond), s.name, fishQuote(firstSentence(s.help)))
		}
		for _, f := range c.flags {
			flag(cond, f)
		}
		switch c.args {
		case "file":
			fmt.Fprintf(&b, "complete -c %s -n %s -F\n", m.app, fishQuote(cond))
		case "dir":
			fmt.Fprintf(&b, "complete -c %s -n %s -x -a '(__fish_complete_directories)'\n", m.app, fishQuote(cond))
		}
	}
	return b.String()
}

// firstSentence keeps a help text short for a completion menu.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i+1]
	}
	return s
}
