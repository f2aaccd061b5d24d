#!/usr/bin/env bash
# The harness demo: run examples/hello-task with airlock-harness on the
# default Debian rootfs, kill the harness with SIGKILL mid-way, resume the
# run, show the workspace and verify the audit trail.
#
# Offline by default: the model is the replay model, which plays the recorded
# responses in examples/hello-task/replay.jsonl.  The same task runs against
# a real model when one of these is set:
#
#   OPENAI_API_KEY=sk-…            use the OpenAI Responses API
#   AIRLOCK_MODEL_BASE_URL=URL     an OpenAI-compatible server, e.g. a local
#                                  llama.cpp server, vLLM or Ollama:
#                                  http://127.0.0.1:8080/v1 (no key needed)
#   AIRLOCK_MODEL_API=chat         Chat Completions instead of Responses
#                                  (what most local servers speak)
#   AIRLOCK_MODEL=NAME             model name (default gpt-5.4-mini)
#
# With a real model the harness is killed once the first tool result is in
# its audit trail; with the replay model, after its AIRLOCK_DEMO_KILL_AT-th
# durable write (default 14: after the first turn's two tool results;
# docs/harness.md, "Test hook").  The key stays in the harness's
# environment: it is never written to the task file.
#
# Other settings: AIRLOCK_SOCKET (default /run/airlock/airlockd.sock; an
# airlockd already answering there is used, else one is started and stopped
# at the end), AIRLOCK_BUILD_DIR (default build/), AIRLOCK_DEMO_SKIP_SETUP=1
# (do not run scripts/setup.sh first), AIRLOCK_DEMO_ROOTFS (default
# /var/lib/airlock/rootfs/debian).  The run directory is kept and printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ "${AIRLOCK_DEMO_SKIP_SETUP:-0}" = 1 ] || "$top/scripts/setup.sh"

build=${AIRLOCK_BUILD_DIR:-$top/build}
harness=$build/harness/airlock-harness
airlock=$build/runtime/airlock
sock=${AIRLOCK_SOCKET:-/run/airlock/airlockd.sock}
rootfs=${AIRLOCK_DEMO_ROOTFS:-/var/lib/airlock/rootfs/debian}
example=$top/examples/hello-task
for f in "$harness" "$airlock" "$build/runtime/airlockd"; do
	[ -x "$f" ] || { echo "demo-harness: $f is missing: build first" >&2; exit 1; }
done
for f in "$example/task.json" "$example/replay.jsonl"; do
	[ -f "$f" ] || { echo "demo-harness: $f is missing" >&2; exit 1; }
done
[ -d "$rootfs" ] || { echo "demo-harness: rootfs $rootfs is missing (rootfs/build-debian.sh)" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

work=$(mktemp -d /tmp/airlock-demo-harness.XXXXXX)
daemon=""
sandbox=""
cleanup() {
	if [ -n "$sandbox" ]; then
		"$airlock" --socket "$sock" rm "$sandbox" >/dev/null 2>&1 || true
	fi
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	rm -rf "$work/task"
}
trap cleanup EXIT

# ---- airlockd ----
if "$airlock" --socket "$sock" info >/dev/null 2>&1; then
	say "using the airlockd already answering on $sock"
else
	say "starting airlockd on $sock"
	mkdir -p "$(dirname "$sock")"
	args=(--socket "$sock" --rootfs "$rootfs")
	[ -z "${AIRLOCK_STATE_DIR:-}" ] || args+=(--state-dir "$AIRLOCK_STATE_DIR")
	"$build/runtime/airlockd" "${args[@]}" >"$work/airlockd.log" 2>&1 &
	daemon=$!
	for _ in $(seq 200); do
		"$airlock" --socket "$sock" info >/dev/null 2>&1 && break
		kill -0 "$daemon" 2>/dev/null || { cat "$work/airlockd.log" >&2; exit 1; }
		sleep 0.05
	done
fi

# ---- the task: the example, pointed at this airlockd and model ----
mkdir -p "$work/task"
cp "$example/replay.jsonl" "$work/task/replay.jsonl"
real_model=0
if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${AIRLOCK_MODEL_BASE_URL:-}" ]; then
	real_model=1
fi
SOCK=$sock ROOTFS=$rootfs REAL=$real_model python3 - "$example/task.json" "$work/task/task.json" <<'PY'
import json, os, sys
task = json.load(open(sys.argv[1]))
task.setdefault("provider", {}).update({"type": "local", "socket": os.environ["SOCK"],
                                        "rootfs": os.environ["ROOTFS"]})
if os.environ["REAL"] == "1":
    model = {"api": os.environ.get("AIRLOCK_MODEL_API") or "responses",
             "name": os.environ.get("AIRLOCK_MODEL") or "gpt-5.4-mini"}
    if os.environ.get("AIRLOCK_MODEL_BASE_URL"):
        model["base_url"] = os.environ["AIRLOCK_MODEL_BASE_URL"]
    task["model"] = model
else:
    task["model"] = {"api": "replay", "script": "replay.jsonl"}
json.dump(task, open(sys.argv[2], "w"), indent=2)
PY
run=$work/run
if [ $real_model = 1 ]; then
	say "model: $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["model"]; print(m["api"], m["name"], m.get("base_url", "https://api.openai.com/v1"))' "$work/task/task.json")"
else
	say "model: replay of examples/hello-task/replay.jsonl (offline)"
fi
echo "task: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["input"])' "$work/task/task.json")"

audit_count() { [ -f "$run/audit.jsonl" ] && wc -l <"$run/audit.jsonl" || echo 0; }

# ---- run, killed mid-way ----
status=0
if [ $real_model = 1 ]; then
	say "airlock-harness run (killed with SIGKILL after the first tool result)"
	"$harness" run "$work/task/task.json" --run-dir "$run" &
	pid=$!
	while kill -0 $pid 2>/dev/null; do
		if [ -f "$run/audit.jsonl" ] && grep -q '"kind": *"tool_result"' "$run/audit.jsonl"; then
			kill -KILL $pid 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	wait $pid 2>/dev/null || status=$?
else
	kill_at=${AIRLOCK_DEMO_KILL_AT:-14}
	say "airlock-harness run (SIGKILL after durable write $kill_at: AIRLOCK_HARNESS_KILL_AT=$kill_at)"
	# In the background, so that the shell does not report the kill itself.
	AIRLOCK_HARNESS_KILL_AT=$kill_at "$harness" run "$work/task/task.json" --run-dir "$run" &
	wait $! 2>/dev/null || status=$?
fi
if [ $status = 137 ]; then
	echo "-> killed by SIGKILL with $(audit_count) audit records written"
	python3 - "$run" <<'PY'
import json, os, sys
p = os.path.join(sys.argv[1], "state.json")
if os.path.exists(p):
    s = json.load(open(p))
    done = [i.get("call_id") for i in s.get("items", []) if i.get("type") == "function_call_output"]
    done += [c.get("call_id") for c in s.get("pending_calls", [])
             if c.get("result") is not None and c.get("call_id") not in done]
    print("-> state.json: status %s, turn %s, tool results recorded: %s"
          % (s.get("status"), s.get("turn"), ", ".join(done) or "none"))
else:
    print("-> no state.json yet")
PY
elif [ $status = 0 ]; then
	echo "-> the run finished before the kill point; resuming it is then a no-op"
else
	echo "demo-harness: airlock-harness run exited with status $status" >&2
	exit 1
fi

# ---- resume ----
say "airlock-harness resume $run"
"$harness" resume "$run"

sandbox=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("sandbox") or {}).get("sandbox_id") or "")' "$run/state.json")

# ---- what the tool calls did ----
say "the workspace"
if [ -n "$sandbox" ] && "$airlock" --socket "$sock" exec "$sandbox" -- true >/dev/null 2>&1; then
	"$airlock" --socket "$sock" exec "$sandbox" -- sh -c \
		'cd /workspace && ls -la && for f in $(find . -maxdepth 2 -type f | sort | head -20); do echo "--- $f"; head -c 2000 "$f"; done'
else
	sandbox=""
	archive=$(ls -t "$run"/workspace/*.tar 2>/dev/null | head -1 || true)
	if [ -n "$archive" ]; then
		echo "(the run deleted its sandbox; this is its last workspace archive, $archive)"
		python3 - "$archive" <<'PY'
import stat, sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    for m in sorted(tf.getmembers(), key=lambda m: m.name):
        kind = stat.S_IFDIR if m.isdir() else stat.S_IFREG
        print("%s %8d  %s" % (stat.filemode(kind | m.mode), m.size, m.name))
    for m in sorted(tf.getmembers(), key=lambda m: m.name):
        if m.isfile() and m.size <= 2000:
            print("--- " + m.name)
            print(tf.extractfile(m).read().decode(errors="replace").rstrip("\n"))
PY
	fi
fi

say "final output ($run/output.txt)"
cat "$run/output.txt"
echo

say "audit trail"
python3 - "$run/audit.jsonl" <<'PY'
import collections, json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
kinds = collections.Counter(r["kind"] for r in recs)
print(", ".join("%s %d" % kv for kv in kinds.items()))
calls = collections.Counter(r["data"].get("call_id") for r in recs if r["kind"] == "tool_result")
twice = [c for c, n in calls.items() if n > 1]
print("tool results recorded: %d; recorded twice: %s" % (sum(calls.values()), ", ".join(twice) or "none"))
PY
"$harness" audit verify "$run"
say "run directory kept: $run"
