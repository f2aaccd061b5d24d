#!/usr/bin/env bash
# The main job: set up (idempotent), start airlockd, run a command in a
# sandbox on the default Debian rootfs, stop airlockd.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
sock=${AIRLOCK_SOCKET:-/run/airlock/airlockd.sock}
log=$(mktemp /tmp/airlockd.XXXXXX.log)
"$top/build/runtime/airlockd" --socket "$sock" >"$log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
export AIRLOCK_SOCKET=$sock
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(bash -c 'echo "hello from $(hostname)"; id; grep PRETTY /etc/os-release; python3 -c "import sys; print(\"python\", sys.version.split()[0])"; ls /workspace')
"$top/build/runtime/airlock" run -- "${cmd[@]}"
