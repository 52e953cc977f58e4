#!/usr/bin/env bash
# `make test`: the quality gates and the whole test suite. Unit tests need no I/O; the
# end-to-end tests run against a fresh stack of real processes on their own ports, data
# directory and database, which is stopped and wiped afterwards, even on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/commerce-target}

# A stack of its own, beside any `make up` stack.
# TEST_STACK_DIR, TEST_PORT_OFFSET and TEST_PG_DB let two checkouts test side by side.
export STACK_DIR=${TEST_STACK_DIR:-$ROOT/.stack-test} PROFILE=dev FRESH=1 PG_DB=${TEST_PG_DB:-commerce_test}
# A PostgreSQL cluster of its own, so the fault tests may restart it.
export PG_PRIVATE=1
export PORT_OFFSET=${TEST_PORT_OFFSET:-10000} ENVOY_RATE_LIMIT=400
# Listening ports outside the kernel's ephemeral range (32768-60999 on Linux): the suite opens
# thousands of client connections, and one of them may take a port a service restarted by a
# fault test wants to listen on again ("Address already in use").
export MONGO_PORT=$((7017 + PORT_OFFSET))
export CART_COMMAND_PORT=$((51051 + PORT_OFFSET)) ORDER_COMMAND_PORT=$((51052 + PORT_OFFSET)) \
  PRODUCT_COMMAND_PORT=$((51053 + PORT_OFFSET)) PAYMENT_COMMAND_PORT=$((51054 + PORT_OFFSET)) \
  USER_COMMAND_PORT=$((51055 + PORT_OFFSET)) CART_QUERY_PORT=$((51061 + PORT_OFFSET)) \
  SHOP_QUERY_PORT=$((51062 + PORT_OFFSET))
# Per bearer token: far above what one test customer sends, low enough for edge.rs to show it.
export ENVOY_TOKEN_RATE_LIMIT=100
# Short enough for the timeout test, long enough for a checkout on a busy 2-core machine.
export CHECKOUT_TIMEOUT_SECS=15
# The suite registers, logs in and refreshes for hundreds of customers from one address: the
# per-client account rates go up (the per-account log-in backoff stays as it is).
export REGISTER_PER_CLIENT_PER_MINUTE=100000 REFRESH_PER_CLIENT_PER_MINUTE=100000
export LOGIN_FREE_FAILURES_PER_CLIENT=100000 WS_MESSAGES_PER_SECOND=1000
# Traces on: every service exports its spans to the stack's collector (tests/tests/e2e/traces.rs
# reads them back).
export TRACING=1
# The browser tests' Chromium is installed with the other tools.
export INSTALL_BROWSER=1
unset KAFKA_BROKERS MONGODB_URI DATABASE_URL SMTP_URL SMTP_HOST

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
cargo build --workspace --all-targets --locked

echo "== stack"
trap 'scripts/stack.sh down --wipe || true' EXIT
SKIP_BUILD=1 scripts/stack.sh up
set -a
# shellcheck disable=SC1091
. "$STACK_DIR/stack.env"
set +a
export ENVOY_BIN=${TOOLS_DIR:-$HOME/.cache/commerce-tools}/bin/envoy

echo "== tests"
status=0
cargo test --workspace --exclude e2e-tests --locked --no-fail-fast || status=1
cargo test -p e2e-tests --lib --bins --locked || status=1
# The end-to-end tests: one binary, its modules one after another (see scripts/e2e.sh).
scripts/e2e.sh || status=1

echo "== browser tests (web/tests, against the same stack)"
web/build.sh
(cd web && npm test)
exit "$status"
