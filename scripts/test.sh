#!/usr/bin/env bash
# Run every test: set up (idempotent), then every suite of the normal build,
# then under ASan+UBSan (leaks included) the unit, integration and harness
# suites, then each libFuzzer target for a bounded time (20 s each, two at a
# time; docs/fuzzing.md), where any crash, leak or sanitizer report fails.
# The security battery is left out of the sanitizer run: it times the
# kernel's audit records and neighbours' latency, which a 2-3x slower
# airlockd distorts (its keyctl denial record was missed there now and then).
# Sanitized binaries run two to three times slower: their timeouts are doubled,
# and harness-resume, which kills and resumes a run at every step boundary
# (~500 s in the normal build on this 2-core host), kills there at every third
# boundary from a random first one (AIRLOCK_TEST_BOUNDARY_STRIDE).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/setup.sh"
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	AIRLOCK_TEST_BOUNDARY_STRIDE=3 meson test -C build-asan --suite unit --suite integration --suite harness --print-errorlogs \
	--timeout-multiplier 2 ||
	status=$?
# --no-rebuild: setup.sh built the targets, the only part of build-fuzz in use.
meson test -C build-fuzz --suite fuzz --no-rebuild --print-errorlogs --num-processes 2 || status=$?
exit $status
