#!/usr/bin/env bash
# `npm run sandbox [-- ARGS]`: a local Primacy cluster (etcd, MariaDB servers, their agents) in the
# background under .primacy-sandbox/. Installs what is missing and builds first.
#   npm run sandbox                      # primacy sandbox up (3 nodes)
#   npm run sandbox -- --semi-sync       # up, with flags
#   npm run sandbox -- status|kill db1|down
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  up | down | status | kill | help | --help | -h) ;;
  *) set -- up "$@" ;;
esac

if [ "$1" = up ]; then
  bash scripts/setup.sh
  export PATH="$HOME/.local/bin:$PATH"
  pnpm exec tsc -b
fi

if [ -f packages/cli/dist/main.js ]; then
  exec node packages/cli/dist/main.js sandbox "$@"
fi
exec node --conditions=@primacy/source --import tsx packages/cli/src/main.ts sandbox "$@"
