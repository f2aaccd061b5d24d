#!/usr/bin/env bash
# Run every test: set up (idempotent), then the unit and integration suites
# of the normal build, then the unit suite under ASan+UBSan.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/setup.sh"
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --suite unit --print-errorlogs || status=$?
exit $status
