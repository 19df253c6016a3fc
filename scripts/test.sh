#!/usr/bin/env bash
# The whole test suite: type-check everything, then every unit and integration test with node:test.
# Extra arguments are passed to node --test (e.g. --test-name-pattern=gtid).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
pnpm exec tsc -b
mapfile -t files < <(find packages test -name '*.test.ts' -not -path '*/node_modules/*' -not -path '*/dist/*' | sort)
exec node --conditions=@primacy/source --import tsx --import ./test/support/blocking-stdio.mjs --test --test-concurrency=1 --test-force-exit --test-timeout=300000 "$@" "${files[@]}"
