#!/usr/bin/env bash
# Stop the HTTP server started by http-start.sh.
run="$DTK_DATA_DIR/run"
if [[ -f "$run/http.pid" ]]; then
  kill "$(cat "$run/http.pid")" 2>/dev/null || true
  rm -f "$run/http.pid" "$run/http.addr"
fi
echo "stopped"
