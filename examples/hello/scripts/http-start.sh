#!/usr/bin/env bash
# Start (or keep) a static HTTP server on $address:$port over the web root.
# Idempotent: a server already running with the same settings is left alone.
root="$DTK_DATA_DIR/www"
run="$DTK_DATA_DIR/run"
mkdir -p "$root" "$run"
want="$address:$port"
if [[ -f "$run/http.pid" ]] && kill -0 "$(cat "$run/http.pid")" 2>/dev/null; then
  if [[ "$(cat "$run/http.addr" 2>/dev/null)" == "$want" ]]; then
    echo "already serving on http://$want/"
    exit 0
  fi
  kill "$(cat "$run/http.pid")" || true
fi
# setsid: the server must outlive this step's process group.
setsid python3 -m http.server --bind "$address" --directory "$root" "$port" \
  >"$run/http.log" 2>&1 < /dev/null &
echo $! > "$run/http.pid"
echo "$want" > "$run/http.addr"
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$want/', timeout=1)" 2>/dev/null; then
    echo "serving $root on http://$want/"
    exit 0
  fi
  kill -0 "$(cat "$run/http.pid")" 2>/dev/null || { cat "$run/http.log"; exit 1; }
  sleep 0.1
done
echo "server did not answer on http://$want/" >&2
exit 1
