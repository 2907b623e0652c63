#!/usr/bin/env bash
# One command: set up .venv if needed, start the local stand-in APIs and a real mitmdump running
# configs/animal-facts.yaml in reverse mode, send one request through it, print the answer, stop everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

HOST=127.0.0.1
PROXY_PORT=18090
UPSTREAM="http://$HOST:18080"
CONFIG=configs/animal-facts.yaml
WAIT_SECONDS=15

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "demo: $1" >&2
    if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/    /' "$2" >&2; fi
    exit 1
}

# wait_for_log PID LOGFILE PATTERN COUNT: poll until LOGFILE has COUNT lines matching PATTERN (bounded).
wait_for_log() {
    local pid="$1" log="$2" pattern="$3" count="$4" i
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        if [ "$(grep -c -- "$pattern" "$log" 2>/dev/null || true)" -ge "$count" ]; then return 0; fi
        kill -0 "$pid" 2>/dev/null || fail "process $pid exited early; its log:" "$log"
        sleep 0.1
    done
    fail "no '$pattern' within ${WAIT_SECONDS}s; log:" "$log"
}

[ -f addon/datakit.py ] || fail "addon/datakit.py is missing: the Datakit addon has not been written yet"

export PYTHONUNBUFFERED=1  # so the "listening" lines reach the logs as soon as they are printed

"$VENV_PY" scripts/standins.py --host "$HOST" >"$WORK/standins.log" 2>&1 &
PIDS+=($!)
wait_for_log "$!" "$WORK/standins.log" "listening at" 3
sed 's/^/  /' "$WORK/standins.log"

MITMDUMP=("$VENV_DIR/bin/mitmdump" -s addon/datakit.py --set "datakit_config=$CONFIG"
          --mode "reverse:$UPSTREAM" --listen-host "$HOST" --listen-port "$PROXY_PORT" --set flow_detail=0)
echo "demo: ${MITMDUMP[*]}"
"${MITMDUMP[@]}" >"$WORK/mitmdump.log" 2>&1 &
PIDS+=($!)
wait_for_log "$!" "$WORK/mitmdump.log" "listening at" 1

echo "demo: GET http://$HOST:$PROXY_PORT/anything"
echo
if ! "$VENV_PY" - "http://$HOST:$PROXY_PORT/anything" <<'PY'
import json
import sys
import urllib.error
import urllib.request

# No proxy settings from the environment: the request must go straight to the local mitmdump.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    response = opener.open(sys.argv[1], timeout=10)
except urllib.error.HTTPError as e:  # a non-2xx answer still has a status, headers and body worth showing
    response = e
except OSError as e:  # refused, reset, timed out: no answer at all
    sys.exit(f"no response: {e}")
status, reason, headers, body = response.status, response.reason, response.headers, response.read()
print(f"HTTP {status} {reason}")
for name, value in headers.items():
    print(f"{name}: {value}")
print()
try:
    print(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
except ValueError:
    print(body.decode("utf-8", errors="replace"))
sys.exit(0 if status == 200 else 1)
PY
then
    fail "the request through mitmdump failed; mitmdump log:" "$WORK/mitmdump.log"
fi
