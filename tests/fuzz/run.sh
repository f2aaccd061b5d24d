#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time (the 'fuzz' test suite):
#   run.sh FUZZER SEED_CORPUS_DIR SECONDS MAX_LEN [DICTIONARY]
# Starts from a copy of the committed seed corpus (the inputs it finds are
# not kept: docs/fuzzing.md says how to grow the corpus), with the fuzzer's
# temporary files in a directory of its own that is removed afterwards.
# Fails on any crash, leak, sanitizer report or broken property, and then
# prints the input that caused it (base64 and a dump) and how to replay it.
set -euo pipefail
if [ $# -ne 4 ] && [ $# -ne 5 ]; then
	echo "usage: $0 FUZZER SEED_CORPUS_DIR SECONDS MAX_LEN [DICTIONARY]" >&2
	exit 2
fi
fuzzer=$(realpath "$1") seeds=$(realpath "$2") seconds=$3 max_len=$4
dict=()
if [ $# -eq 5 ]; then
	dict=(-dict="$(realpath "$5")")
fi
name=$(basename "$fuzzer")
# Leaks of Debian's libraries that are not Airlock's to fix (lsan.supp says
# which and why).
export LSAN_OPTIONS="suppressions=$(dirname "$(realpath "$0")")/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
	echo "$name: no seed corpus in $seeds" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/airlock-$name-XXXXXX")
cleanup() {
	chmod -R u+rwX "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
# Stopped by meson's timeout or ^C: still clean up.
trap 'exit 143' TERM
trap 'exit 130' INT
mkdir "$work/corpus" "$work/artifacts" "$work/tmp"
cp -R "$seeds"/. "$work/corpus/"

# Prints why it failed and the inputs it saved; $1: the log.
report() {
	echo "$name: FAILED; the fuzzer's log:" >&2
	tail -n 80 "$1" >&2
	for f in "$work"/artifacts/*; do
		[ -e "$f" ] || continue
		echo "---- input $(basename "$f") ($(stat -c %s "$f") bytes), base64:" >&2
		base64 -w 76 "$f" >&2
		echo "---- as text:" >&2
		od -A d -c "$f" | head -n 40 >&2
		echo "---- replay: save it (base64 -d) to a file and run:" \
			"LSAN_OPTIONS=$LSAN_OPTIONS $fuzzer FILE" >&2
	done
}

# Artifacts (crash-*, leak-*, timeout-*, oom-*) go to $work/artifacts; the
# cwd is $work so that nothing lands elsewhere.
fuzz() {
	(cd "$work" && TMPDIR="$work/tmp" "$fuzzer" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$work/artifacts/" "$@")
}

# The seeds alone first, each once: a regression input fails here.
if ! fuzz -runs=0 "$work/corpus" >"$work/seeds.log" 2>&1 ||
	[ -n "$(ls -A "$work/artifacts")" ]; then
	echo "$name: the seed corpus $seeds does not pass" >&2
	report "$work/seeds.log"
	exit 1
fi
if ! fuzz -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 "${dict[@]}" \
	"$work/corpus" >"$work/fuzz.log" 2>&1 || [ -n "$(ls -A "$work/artifacts")" ]; then
	report "$work/fuzz.log"
	exit 1
fi
grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$work/fuzz.log" || true
echo "$name: no crash, leak or sanitizer report in $seconds s"
