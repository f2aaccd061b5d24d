#!/usr/bin/env bash
# The main job: set up (idempotent), start airlockd, run a command in a
# sandbox on the default Debian rootfs, then run the example agent task with
# airlock-harness (replay model, offline): its tool calls run in a sandbox,
# the harness is killed mid-way and resumed, and the audit trail verifies
# (scripts/demo-harness.sh; set OPENAI_API_KEY or AIRLOCK_MODEL_BASE_URL to
# use a real model).  Arguments, if any, replace the first command.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
sock=${AIRLOCK_SOCKET:-/run/airlock/airlockd.sock}
log=$(mktemp /tmp/airlockd.XXXXXX.log)
"$top/build/runtime/airlockd" --socket "$sock" >"$log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
	curl -sf --unix-socket "$sock" http://airlockd/v1/info >/dev/null 2>&1 && break
	kill -0 $daemon 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.05
done
export AIRLOCK_SOCKET=$sock
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(bash -c 'echo "hello from $(hostname)"; id; grep PRETTY /etc/os-release; python3 -c "import sys; print(\"python\", sys.version.split()[0])"')
printf '\n\033[1m== airlock run -- %s\033[0m\n' "${cmd[*]}"
"$top/build/runtime/airlock" run -- "${cmd[@]}"
AIRLOCK_DEMO_SKIP_SETUP=1 "$top/scripts/demo-harness.sh"
