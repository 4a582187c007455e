#!/usr/bin/env bash
# make demo: start a dev cluster (one coordinator, two agents on loopback),
# push the example module, stage and deploy it with live progress, show it
# working, change it, delete it, and stop everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
ADDR=127.0.0.1:7070
PORT=${DEMO_PORT:-8080}
log=$(mktemp -t dtk-demo-XXXXXX.log)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if curl -sS -k -m 1 "https://$ADDR/v1/status" >/dev/null 2>&1 || curl -sS -m 1 "http://$ADDR/v1/status" >/dev/null 2>&1; then
  echo "something already answers on $ADDR: stop it and run make demo again" >&2
  exit 1
fi

step "Starting a dev cluster: $BIN/dtk-agent dev --agents 2 (log: $log)"
"$BIN/dtk-agent" dev --agents 2 >"$log" 2>&1 &
dev=$!
cleanup() {
  kill -INT "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
}
trap cleanup EXIT

# The dev cluster makes its own CA and certificates and prints the lines
# that point dtkctl at it; they are also in the file it names.
for _ in $(seq 1 100); do
  env_file=$(grep -o '/[^ ]*/env)' "$log" | head -1 | tr -d ')' || true)
  [[ -n "$env_file" && -f "$env_file" ]] && break
  kill -0 "$dev" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[[ -n "${env_file:-}" ]] || { echo "the dev cluster did not print its settings" >&2; cat "$log"; exit 1; }
# shellcheck disable=SC1090
. "$env_file"
printf 'dtkctl talks to it over mutual TLS:\n'
sed 's/^/  /' "$env_file"

for _ in $(seq 1 100); do
  if [[ "$("$BIN/dtkctl" node list --json 2>/dev/null | grep -c '"name"')" -ge 2 ]]; then break; fi
  kill -0 "$dev" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
sed -n '1,5p' "$log" | grep -v '^time=' || true
run "$BIN/dtkctl" node list

step "Pushing the example module"
run "$BIN/dtkctl" module push examples/hello
run "$BIN/dtkctl" module list

step "Staging and deploying it as service 'demo'"
run "$BIN/dtkctl" service stage demo --template hello/site --set port="$PORT"
run "$BIN/dtkctl" service deploy demo --wait
run "$BIN/dtkctl" service status demo

step "It works: the web node (agent-1, 127.0.0.2) serves the page"
run curl -fsS "http://127.0.0.2:$PORT/index.html"

step "Changing one input and redeploying: only the steps that use it run"
run "$BIN/dtkctl" service set demo greeting=Bonjour
run "$BIN/dtkctl" service plan demo
run "$BIN/dtkctl" service deploy demo --wait
run curl -fsS "http://127.0.0.2:$PORT/index.html"

step "Deleting the service: delete actions run in reverse order"
run "$BIN/dtkctl" service delete demo --wait
run "$BIN/dtkctl" service list
if curl -fsS -m 1 "http://127.0.0.2:$PORT/" >/dev/null 2>&1; then
  echo "the web server is still running after delete" >&2
  exit 1
fi
echo "the web server is gone"

step "Stopping the dev cluster"
