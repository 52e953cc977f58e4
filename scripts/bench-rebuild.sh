#!/usr/bin/env bash
# The rebuild benchmark (not a test): a broker of its own on its own ports, a database of its
# own, `--events` synthetic cart events (default 1,000,000), a raw rdkafka consumer over the
# topic and the rebuild engine of `commerce projections rebuild` over the same topic, in one
# run; the result is appended to docs/BENCHMARKS.md.
#
#   scripts/bench-rebuild.sh [--events N] [--batch-size N]
#
# BENCH_PORT_OFFSET (default 12000) and BENCH_PG_DB (default commerce_bench_rebuild) keep it
# apart from `make up`, `make test` and `make bench`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/commerce-target}
export STACK_DIR=$ROOT/.stack-bench-rebuild PROFILE=release FRESH=1
export PORT_OFFSET=${BENCH_PORT_OFFSET:-12000} PG_DB=${BENCH_PG_DB:-commerce_bench_rebuild}
export RUST_LOG=warn
unset KAFKA_BROKERS MONGODB_URI DATABASE_URL

cargo build --release --locked -p e2e-tests --bin rebuild-bench
scripts/install-tools.sh >/dev/null
trap 'scripts/stack.sh stop tansu >/dev/null 2>&1 || true' EXIT
scripts/stack.sh start tansu >/dev/null
set -a; eval "$(scripts/stack.sh env)"; set +a
psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB"

out=$(mktemp)
"$CARGO_TARGET_DIR/release/rebuild-bench" "$@" | tee "$out"
{
  echo
  echo "## Rebuild throughput — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`scripts/bench-rebuild.sh $*\` (release build)."
  echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB; $(uname -sr). Broker: Tansu 0.6 (memory). PostgreSQL $(psql -tA "$DATABASE_URL" -c 'SHOW server_version' 2>/dev/null | cut -d' ' -f1)."
  echo
  cat "$out"
} >>docs/BENCHMARKS.md
rm -f "$out"
psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" || true
echo "recorded in docs/BENCHMARKS.md"
