#!/usr/bin/env bash
# Installs what Primacy needs and is missing: Debian's MariaDB and etcd, pnpm, and the node modules.
# Safe to run again: each step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'primacy setup: %s\n' "$*" >&2; }

debs=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || debs+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || debs+=(mariadb-client)
command -v etcd >/dev/null 2>&1 || debs+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || debs+=(etcd-client)
# test/haproxy.test.ts runs HAProxy in front of a cluster; the config generator's tests check with haproxy -c.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || debs+=(haproxy)
# Only test/web.test.ts uses it: the page of primacy web in headless Chromium, through playwright-core.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || debs+=(chromium)
# promtool checks the /metrics the agents serve and the example alert rules (test/metrics.test.ts).
command -v promtool >/dev/null 2>&1 || debs+=(prometheus)
# scripts/install.sh packs the programs and needs only the node modules, not the test servers.
if [ "${1:-}" = --node-modules ]; then debs=(); fi
if [ ${#debs[@]} -gt 0 ]; then
  # As root, or through sudo (which may ask for your password on a terminal).
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
      as_root=(sudo)
    else
      say "missing Debian packages; run this once as root, then run me again:"
      say "  apt-get update && apt-get install -y --no-install-recommends ${debs[*]}"
      exit 1
    fi
  fi
  say "installing Debian packages: ${debs[*]}${as_root:+ (with sudo)}"
  # policy-rc.d keeps the packaged mariadb and etcd services from starting: Primacy runs its own servers.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${as_root[@]}" chmod +x /usr/sbin/policy-rc.d
    trap '"${as_root[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1; then
  if [ -w "$(npm prefix -g 2>/dev/null)/lib" ] || [ "$(id -u)" = 0 ]; then
    say "installing pnpm 9 with npm"
    npm install -g --silent pnpm@9 >/dev/null
  else
    say "installing pnpm 9 under ~/.local"
    npm install -g --silent --prefix "$HOME/.local" pnpm@9 >/dev/null
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi

if [ ! -d node_modules/.pnpm ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  say "installing node modules"
  pnpm install --frozen-lockfile --reporter=silent
fi
