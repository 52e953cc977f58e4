#!/usr/bin/env bash
# `make bench`: builds in release mode, brings up a stack of its own (fresh data, own ports),
# runs the benchmarks with bounded counts (cart commands, queries, whole journeys with k6,
# footprint), and records the results in docs/BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/commerce-target}
export STACK_DIR=$ROOT/.stack-bench PROFILE=release FRESH=1 PG_DB=commerce_bench
export PORT_OFFSET=1000 RUST_LOG=warn
# Envoy's client rate limit would cap the query benchmark, not measure it.
export ENVOY_RATE_LIMIT=${ENVOY_RATE_LIMIT:-1000000}
# The journeys register and log in a customer each, all from one address (as `make test`).
export REGISTER_PER_CLIENT_PER_MINUTE=${REGISTER_PER_CLIENT_PER_MINUTE:-100000}
export LOGIN_FREE_FAILURES_PER_CLIENT=${LOGIN_FREE_FAILURES_PER_CLIENT:-100000}
unset KAFKA_BROKERS MONGODB_URI DATABASE_URL
COUNT=${BENCH_COUNT:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-8}

cargo build --release --locked -p command-services -p projectors -p query-services -p bff -p e2e-tests --bins
trap 'scripts/stack.sh down --wipe || true' EXIT
SKIP_BUILD=1 scripts/stack.sh up >/dev/null
set -a; . "$STACK_DIR/stack.env"; set +a

out=$(mktemp)
"$CARGO_TARGET_DIR/release/cart-bench" --count "$COUNT" --concurrency "$CONCURRENCY" | tee "$out"
qout=$(mktemp)
"$CARGO_TARGET_DIR/release/query-bench" --products "${BENCH_PRODUCTS:-2000}" \
  --seconds "${BENCH_SECONDS:-10}" --rates "${BENCH_RATES:-50,200}" | tee "$qout"

# Whole journeys through Envoy (k6, bench/journeys.js): bounded by JOURNEYS and
# JOURNEY_SECONDS, next to the raw limits measured above in this run.
raw_row() { grep -F "$2" "$1" | head -n1; }
ins=$(raw_row "$out" '| MongoDB driver `insert_one`')
export RAW_INSERT_RATE=$(echo "$ins" | awk -F'|' '{gsub(/[ \/s]/, "", $3); print $3}')
export RAW_INSERT_P50=$(echo "$ins" | awk -F'|' '{gsub(/ /, "", $4); print $4}')
export RAW_SEARCH_SQL_P50=$(raw_row "$qout" '| search | same SQL (sqlx) |' | awk -F'|' '{gsub(/ /, "", $8); print $8}')
export RAW_DETAILS_SQL_P50=$(raw_row "$qout" '| details | same SQL (sqlx) |' | awk -F'|' '{gsub(/ /, "", $8); print $8}')
# Commands the command services executed (ok), summed over their /metrics.
commands_ok() {
  local total=0 u v
  for u in "$CART_COMMAND_ADMIN_URL" "$ORDER_COMMAND_ADMIN_URL" "$PRODUCT_COMMAND_ADMIN_URL" \
    "$PAYMENT_COMMAND_ADMIN_URL" "$USER_COMMAND_ADMIN_URL"; do
    v=$(curl -fsS "$u/metrics" | awk '/^commands_total\{.*outcome="ok"/ {s += $NF} END {print s + 0}')
    total=$((total + ${v%.*}))
  done
  echo "$total"
}
jout=$(mktemp)
c0=$(commands_ok)
t0=$(date +%s.%N)
JOURNEYS=${JOURNEYS:-300} JOURNEY_VUS=${JOURNEY_VUS:-4} JOURNEY_SECONDS=${JOURNEY_SECONDS:-60} \
  "${TOOLS_DIR:-$HOME/.cache/commerce-tools}/bin/k6" run --quiet --no-color bench/journeys.js | tee "$jout"
t1=$(date +%s.%N)
c1=$(commands_ok)
awk -v n=$((c1 - c0)) -v t0="$t0" -v t1="$t1" -v raw="$RAW_INSERT_RATE" 'BEGIN {
  r = n / (t1 - t0)
  printf "Commands executed during the run (setup included): %d, %.1f/s; raw `insert_one` in the same run: %s/s (ratio %.2f).\n", n, r, raw, (raw > 0 ? r / raw : 0)
}' | tee -a "$jout"

# Footprint: each service's peak RSS over the benchmarks (under load), then its cold start
# (start until healthy) and its RSS idle right after.
fout=$(mktemp)
{
  echo "| service | peak RSS under load MiB | cold start s | idle RSS after start MiB |"
  echo "|---|---:|---:|---:|"
  for pidf in "$STACK_DIR"/pids/*.pid; do
    svc=$(basename "$pidf" .pid)
    pid=$(cat "$pidf")
    hwm=$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo -)
    case $svc in
      tansu | mongo | envoy) echo "| $svc | $hwm | - | - |" ;;
      *)
        scripts/stack.sh stop "$svc" >/dev/null 2>&1
        t0=$(date +%s.%N)
        scripts/stack.sh start "$svc" >/dev/null 2>&1
        t1=$(date +%s.%N)
        sleep 1
        rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$(cat "$pidf")/status" 2>/dev/null || echo -)
        echo "| $svc | $hwm | $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") | $rss |"
        ;;
    esac
  done
} >"$fout"
cat "$fout"

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
  echo
  echo "### Queries: product search and product details (\`query-bench\`)"
  echo
  echo "Through Envoy → BFF → query service → PostgreSQL, next to the same SQL run directly with sqlx in the same run."
  echo "Fixed-rate rows are open loop (latency from when each request was due)."
  echo
  cat "$qout"
  echo
  echo "### Journeys: register, browse, cart, checkout, confirmed (\`k6 run bench/journeys.js\`)"
  echo
  echo "Each k6 virtual user runs whole journeys through Envoy: register and log in, search and page on, a product page, a cart, a card token, checkout, then polls the order until the saga has confirmed it (JOURNEYS=${JOURNEYS:-300} at most, JOURNEY_VUS=${JOURNEY_VUS:-4}, JOURNEY_SECONDS=${JOURNEY_SECONDS:-60} at most)."
  echo "Step times are wall times of the step's requests; \"confirmed\" is from checkout's answer until the order reads CONFIRMED."
  echo
  cat "$jout"
  echo
  echo "### Footprint"
  echo
  echo "Cold start is \`scripts/stack.sh start\` until the service's health check passes (release build)."
  echo
  cat "$fout"
} >>docs/BENCHMARKS.md
rm -f "$out" "$qout" "$fout" "$jout"
echo "recorded in docs/BENCHMARKS.md"
