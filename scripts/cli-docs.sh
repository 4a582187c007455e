#!/usr/bin/env bash
# Regenerates docs/cli.md from the binaries' own --help, so the reference
# cannot drift from the code. Run after changing a command: make cli-docs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
out=docs/cli.md

section() { # binary, command words...
  local bin=$1; shift
  printf '\n### `%s %s`\n\n```text\n' "$(basename "$bin")" "$*"
  "$bin" "$@" --help 2>&1 | sed -e 's/[[:space:]]*$//'
  printf '```\n'
}

{
  cat <<'HEAD'
# CLI reference

Generated from the binaries' `--help` by `make cli-docs` (scripts/cli-docs.sh); do not edit by hand.

Exit codes (both binaries): **0** success; **1** the operation ran and failed (a failed deploy, an unreachable
coordinator); **2** bad usage or bad input (unknown flag, invalid module, unknown service, a plan with violations on
deploy; `dtkctl module validate` exits 1 for an invalid module, as a check that ran and failed). `dtkctl` reaches a coordinator at `--addr`, else `$DTK_ADDR`, else `127.0.0.1:7070` (the address of
`dtk-agent dev`). Every command that prints something takes `--json`; states are coloured only on a terminal
(`--no-color` or `$NO_COLOR` turns colour off). Shell completion: `dtkctl completion bash|zsh|fish`; man pages: `make man`.

## dtk-agent
HEAD
  for cmd in "run" "dev" "version" "config check" "tls ca create" "tls ca fingerprint" "tls cert create" "keygen" \
             "service install" "service uninstall" "service start" "service stop" "service restart" "service status"; do
    section "$BIN/dtk-agent" $cmd
  done
  printf '\n## dtkctl\n'
  for cmd in "module push" "module publish" "module list" "module delete" "module sign" "module verify" "key create" "key show" "service stage" "service set" "service plan" "service deploy" \
             "service status" "service list" "service logs" "service exec" "service cancel" "service upgrade" \
             "service delete" "service restore" "service graph" "service history" "events" "node list" "node token create" "node token list" \
             "node token delete" "node pending" "node approve" "node reject" "node remove" "node label" \
             "bundle export" "bundle import" "bundle inspect" \
             "operator members" "operator raft peers" "operator raft remove-peer" "operator snapshot save" \
             "operator snapshot restore" "operator leave" "operator keyring list" "operator keyring install" \
             "operator keyring use" "operator keyring remove" "acl bootstrap" "acl policy create" "acl policy list" \
             "acl policy show" "acl policy delete" "acl token create" "acl token list" "acl token show" \
             "acl token delete" "audit list" "module validate" "module fmt" "version" "completion"; do
    section "$BIN/dtkctl" $cmd
  done
} > "$out"
echo "wrote $out"
