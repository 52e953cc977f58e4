#!/usr/bin/env bash
# `make screenshots`: regenerates docs/screenshots/*.png, the main pages of the storefront and
# the back office, from a real browser (Debian's Chromium via playwright-core) against a real
# stack. With GRAPHQL_URL (and ADMIN_EMAIL / ADMIN_PASSWORD) set, against that stack; else a
# fresh stack of its own (its own data, database and ports: SHOTS_PORT_OFFSET, default 3000),
# filled with a small catalogue, orders and reviews, and wiped afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export INSTALL_BROWSER=1

if [ -z "${GRAPHQL_URL:-}" ]; then
  export STACK_DIR=${SHOTS_STACK_DIR:-$ROOT/.stack-shots} PORT_OFFSET=${SHOTS_PORT_OFFSET:-3000} \
    PG_DB=${SHOTS_PG_DB:-commerce_shots} PG_PRIVATE=1 FRESH=1 PROFILE=${PROFILE:-dev}
  unset KAFKA_BROKERS MONGODB_URI DATABASE_URL
  trap 'scripts/stack.sh down --wipe || true' EXIT
  scripts/stack.sh up
  set -a
  # shellcheck disable=SC1091
  . "$STACK_DIR/stack.env"
  set +a
else
  scripts/install-tools.sh
  web/build.sh
fi
(cd web && npm run --silent screenshots)
