#!/usr/bin/env bash
# `make bench`: builds in release mode, brings up a stack of its own (fresh data, own ports),
# runs the benchmarks with bounded counts, and records the results in docs/BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/commerce-target}
export STACK_DIR=$ROOT/.stack-bench PROFILE=release FRESH=1 PG_DB=commerce_bench
export PORT_OFFSET=1000 RUST_LOG=warn
unset KAFKA_BROKERS MONGODB_URI DATABASE_URL
COUNT=${BENCH_COUNT:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-8}

cargo build --release --locked -p command-services -p projectors -p query-services -p bff -p e2e-tests --bins
trap 'scripts/stack.sh down --wipe || true' EXIT
SKIP_BUILD=1 scripts/stack.sh up >/dev/null
set -a; . "$STACK_DIR/stack.env"; set +a

out=$(mktemp)
"$CARGO_TARGET_DIR/release/cart-bench" --count "$COUNT" --concurrency "$CONCURRENCY" | tee "$out"

secantus=$("$HOME/.cache/commerce-tools/venv/bin/pip" show secantusdb 2>/dev/null | awk '/^Version/ {print $2}')
{
  echo
  echo "## Cart commands and projection — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`make bench\` (BENCH_COUNT=$COUNT, BENCH_CONCURRENCY=$CONCURRENCY)."
  echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; $(uname -sr)."
  echo "Store: SecantusDB ${secantus:-?} (MongoDB wire, fresh data dir). Broker: Tansu 0.6 (memory). PostgreSQL $(psql -tA "$DATABASE_URL" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1)."
  echo
  cat "$out"
} >>docs/BENCHMARKS.md
rm -f "$out"
echo "recorded in docs/BENCHMARKS.md"
