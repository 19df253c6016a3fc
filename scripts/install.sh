#!/usr/bin/env bash
# Puts `primacy` and `primacy-agent` on the PATH: packs each program into a self-contained npm
# tarball under build/ (scripts/pack.ts), then installs both with `npm install -g`, or under
# --prefix DIR, whose bin/ then holds them. The tarballs need only Node 20 on the host they go to:
# copy them to another host and `npm install -g` them there.
set -euo pipefail
cd "$(dirname "$0")/.."

usage='usage: bash scripts/install.sh [--prefix DIR]'
say() { printf 'primacy install: %s\n' "$*" >&2; }

prefix=''
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix)
      [ $# -ge 2 ] && [ -n "$2" ] || { say "--prefix needs a folder; $usage"; exit 2; }
      prefix=$2
      shift 2
      ;;
    --prefix=?*) prefix=${1#--prefix=}; shift ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) say "unknown argument: $1; $usage"; exit 2 ;;
  esac
done

if [ -z "$prefix" ]; then
  global=$(npm prefix -g)
  if [ ! -w "$global/lib" ] && [ "$(id -u)" != 0 ]; then
    say "cannot write to npm's global prefix $global; run me as root, or give --prefix \"\$HOME/.local\""
    exit 2
  fi
  bin="$global/bin"
  where=(-g)
else
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  bin="$prefix/bin"
  where=(-g --prefix "$prefix")
fi

# Packing needs the workspace's node modules (not its Debian packages); running needs neither.
bash scripts/setup.sh --node-modules
mapfile -t tarballs < <(node --import tsx scripts/pack.ts --out build)
npm install "${where[@]}" --no-audit --no-fund --loglevel=error "${tarballs[@]}" >/dev/null
say "installed primacy $("$bin/primacy" --version) and primacy-agent $("$bin/primacy-agent" --version) in $bin"
case ":$PATH:" in
  *":$bin:"*) ;;
  *) say "$bin is not on your PATH; add it, e.g. export PATH=\"$bin:\$PATH\"" ;;
esac
