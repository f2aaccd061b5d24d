#!/usr/bin/env bash
# Compile agent.ts with clients/js's pinned TypeScript and SDK (scripts/setup.sh
# installs them) and run it.  It is compiled inside clients/js (build-examples/,
# not committed) so that both tsc and node find the SDK in clients/js's
# node_modules and @airlock/agents-sandbox as that package itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
js=$(cd "$here/../../clients/js" && pwd)
if [ ! -x "$js/node_modules/.bin/tsc" ] || [ ! -f "$js/dist/index.js" ]; then
	echo "run.sh: clients/js is not built; run scripts/setup.sh first" >&2
	exit 1
fi
out=$js/build-examples/agents-sdk
mkdir -p "$out"
cp "$here/agent.ts" "$out/agent.ts"
cat >"$out/tsconfig.json" <<'JSON'
{
  "extends": "../../tsconfig.json",
  "compilerOptions": {"rootDir": ".", "outDir": "out", "declaration": false, "sourceMap": false},
  "include": ["agent.ts"]
}
JSON
"$js/node_modules/.bin/tsc" -p "$out/tsconfig.json"
exec node "$out/out/agent.js"
