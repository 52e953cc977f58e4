#!/usr/bin/env bash
# Builds the web app into web/dist (what the BFF serves at /), only when its sources changed:
# `npm ci` when package-lock.json changed (or node_modules is missing), `npm run build` when
# any source did. Run by `scripts/stack.sh up` unless SKIP_WEB=1, and by the browser tests.
set -euo pipefail
WEB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$WEB"
log() { printf '[web] %s\n' "$*" >&2; }
command -v npm >/dev/null || { log "error: npm is missing (Debian: apt-get install nodejs npm)"; exit 1; }

lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.commerce-lock 2>/dev/null)" != "$lock" ]; then
  log "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >node_modules/.commerce-lock
fi

stamp=$(find index.html package.json package-lock.json tsconfig.json vite.config.ts src public -type f -print0 |
  sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -s dist/index.html ] && [ "$(cat node_modules/.commerce-dist 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
log "building the storefront and back office (npm run build)"
npm run build --silent
echo "$stamp" >node_modules/.commerce-dist
