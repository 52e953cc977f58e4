#!/usr/bin/env bash
# The local stack launcher: starts the whole system as separate real processes (Tansu for
# Kafka, SecantusDB or a real mongod for MongoDB, the running PostgreSQL, Envoy, and every
# service), waits on health checks, and keeps logs, PIDs and data under $STACK_DIR.
#
#   scripts/stack.sh up                 install what is missing, build (the web app too, unless
#                                       SKIP_WEB=1), start everything
#   scripts/stack.sh down [--wipe]      stop everything by PID (--wipe deletes the data too:
#                                       the store, the broker's and the read models' database)
#   scripts/stack.sh status             what runs, with PIDs
#   scripts/stack.sh start|stop|kill|restart SERVICE
#                                       one service (kill = SIGKILL, no clean shutdown)
#   scripts/stack.sh env                the endpoints, as shell variables
#   TRACING=1 scripts/stack.sh up       also a trace collector (Rotel, OTLP in, Kafka out) that
#                                       every service exports its spans to
#   scripts/stack.sh cli ARGS...        the operator CLI (`commerce`) against this stack
#
# Every endpoint is configurable through the environment (see the defaults below); with
# KAFKA_BROKERS / MONGODB_URI / DATABASE_URL set, the external component is used as is.
# PostgreSQL is the machine's server on port 5432 by default; PG_PRIVATE=1 runs a cluster of
# the stack's own instead (service `postgres`, data under $STACK_DIR/data/pg, port 5432 +
# PORT_OFFSET), which `make test` uses so that its fault tests can restart PostgreSQL.
set -euo pipefail

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
LOGS=$STACK_DIR/logs
PIDS=$STACK_DIR/pids
DATA=$STACK_DIR/data
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/commerce-tools}
TOOLS_BIN=$TOOLS_DIR/bin
# The build profile: as given, else the one the last `up` used, else release.
PROFILE=${PROFILE:-$(cat "$STACK_DIR/profile" 2>/dev/null || echo release)}
# Build cache outside the clone, shared by every checkout and by CI on this machine.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/commerce-target}
TARGET_DIR=$CARGO_TARGET_DIR
if [ "$PROFILE" = "dev" ] || [ "$PROFILE" = "debug" ]; then BIN_DIR=$TARGET_DIR/debug; else BIN_DIR=$TARGET_DIR/$PROFILE; fi

HOST=127.0.0.1
# Every port is PORT_OFFSET + its default, unless set on its own (make test uses 10000,
# make bench 1000, so they run beside a `make up` stack).
O=${PORT_OFFSET:-0}
KAFKA_PORT=${KAFKA_PORT:-$((9092 + O))}
MONGO_PORT=${MONGO_PORT:-$((27017 + O))}
ENVOY_PORT=${ENVOY_PORT:-$((8080 + O))}
ENVOY_ADMIN_PORT=${ENVOY_ADMIN_PORT:-$((9901 + O))}
ENVOY_RATE_LIMIT=${ENVOY_RATE_LIMIT:-400}
# Per client address and per bearer token (requests per second), under the shared limit.
ENVOY_CLIENT_RATE_LIMIT=${ENVOY_CLIENT_RATE_LIMIT:-$ENVOY_RATE_LIMIT}
ENVOY_TOKEN_RATE_LIMIT=${ENVOY_TOKEN_RATE_LIMIT:-$ENVOY_CLIENT_RATE_LIMIT}
# The application services' ports (gRPC, admin, the payment service's card tokenization
# endpoint behind Envoy's /pay/v1/tokens, ...) come from deploy/services.tsv, below.
# The mail catcher (MailDev): SMTP, and its web page and REST API (GET /api/email).
MAILDEV_SMTP_PORT=${MAILDEV_SMTP_PORT:-$((1025 + O))}
MAILDEV_WEB_PORT=${MAILDEV_WEB_PORT:-$((1080 + O))}
PG_DB=${PG_DB:-commerce}
# As given, else what the last `up` of this stack directory used.
PG_PRIVATE=${PG_PRIVATE:-$(cat "$STACK_DIR/pg_private" 2>/dev/null || echo 0)}
# The machine's server on 5432, or a private cluster on 5432 + PORT_OFFSET, unless set.
PG_PORT=${PG_PORT:-$([ "$PG_PRIVATE" = 1 ] && echo $((5432 + O)) || echo 5432)}

# The application services, from deploy/services.tsv (its header explains the columns):
# SERVICES in start order, and per service its binary, arguments, health check, port
# variables and URL variable. Each port variable is set here, as before: as given in the
# environment, else its default + PORT_OFFSET (a default marked `!` ignores the environment).
SERVICES_TSV=$ROOT/deploy/services.tsv
SERVICES=()
declare -A SVC_BIN SVC_ARGS SVC_HEALTH SVC_PORT SVC_ADMIN SVC_URL
set_port() {
  local var=${1%%=*} def=${1#*=}
  [[ $var =~ ^[A-Z_][A-Z0-9_]*$ && ${def%!} =~ ^[0-9]+$ ]] || die "$SERVICES_TSV: bad port $1 (VAR=DEFAULT)"
  if [[ $def == *! ]]; then printf -v "$var" '%s' "$((${def%!} + O))"
  else printf -v "$var" '%s' "${!var:-$((def + O))}"; fi
}
load_services() {
  local name bin args port admin extra health url p
  local -a ports
  while IFS=$'\t' read -r name bin args port admin extra health url _; do
    [[ -z $name || $name == \#* ]] && continue
    [ -n "$url" ] || die "$SERVICES_TSV: $name: too few columns"
    [ "$url" = - ] || [ "$port" != - ] || die "$SERVICES_TSV: $name: a URL variable needs a port"
    SERVICES+=("$name")
    SVC_BIN[$name]=$bin SVC_ARGS[$name]=$args SVC_HEALTH[$name]=$health SVC_URL[$name]=$url
    SVC_PORT[$name]=${port%%=*} SVC_ADMIN[$name]=${admin%%=*}
    IFS=, read -ra ports <<<"$port,$admin,$extra"
    for p in "${ports[@]}"; do [ "$p" = - ] || set_port "$p"; done
  done <"$SERVICES_TSV"
}
# A cell of the table with its placeholders filled in: {host}, {port} and {admin} (the
# service's own), {VAR} (any port variable).
fill() {
  local name=$1 s=$2 var
  while [[ $s =~ \{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
    case ${BASH_REMATCH[1]} in
      host) s=${s/"${BASH_REMATCH[0]}"/$HOST}; continue ;;
      port) var=${SVC_PORT[$name]} ;;
      admin) var=${SVC_ADMIN[$name]} ;;
      *) var=${BASH_REMATCH[1]} ;;
    esac
    [[ $var != - && -n ${!var+set} ]] || die "$SERVICES_TSV: $name: no value for ${BASH_REMATCH[0]}"
    s=${s/"${BASH_REMATCH[0]}"/${!var}}
  done
  printf '%s\n' "$s"
}
load_services
# Every placeholder must resolve (here, where a bad table stops the script, rather than in
# the subshell that builds a command line).
for svc in "${SERVICES[@]}"; do
  fill "$svc" "${SVC_ARGS[$svc]} ${SVC_HEALTH[$svc]}" >/dev/null
done

EXTERNAL_KAFKA=${KAFKA_BROKERS:+yes}
EXTERNAL_MONGO=${MONGODB_URI:+yes}
EXTERNAL_PG=${DATABASE_URL:+yes}
EXTERNAL_SMTP=${SMTP_URL:+yes}${SMTP_HOST:+yes}
export KAFKA_BROKERS=${KAFKA_BROKERS:-$HOST:$KAFKA_PORT}
export MONGODB_URI=${MONGODB_URI:-mongodb://$HOST:$MONGO_PORT/?directConnection=true}
export MONGODB_DB=${MONGODB_DB:-commerce}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@$HOST:$PG_PORT/$PG_DB}
# Where each service with a URL variable in the table is found (CART_COMMAND_URL, ...).
for svc in "${SERVICES[@]}"; do
  if [ "${SVC_URL[$svc]}" != - ]; then port=${SVC_PORT[$svc]}; export "${SVC_URL[$svc]}=http://$HOST:${!port}"; fi
done
# Where the notification projector mails to (MailDev unless SMTP_URL or SMTP_HOST is given),
# from whom, and the storefront its links point to.
[ -n "$EXTERNAL_SMTP" ] || export SMTP_URL=smtp://$HOST:$MAILDEV_SMTP_PORT
export MAIL_FROM=${MAIL_FROM:-Commerce <no-reply@commerce.local>}
export PUBLIC_WEB_URL=${PUBLIC_WEB_URL:-http://$HOST:$ENVOY_PORT}
# The access-token secret shared by the user service and the BFF, and the first admin:
# generated once per stack directory unless given, readable by the owner only (0600, like
# stack.env, which repeats them for the tests).
mkdir -p "$STACK_DIR"
secret_file() {
  local f=$STACK_DIR/$1 bytes=$2
  [ -s "$f" ] || (umask 077; od -An -tx1 -N"$bytes" /dev/urandom | tr -d ' \n' >"$f")
  chmod 600 "$f"
}
secret_file jwt_secret 32
secret_file admin_password 12
export JWT_SECRET=${JWT_SECRET:-$(cat "$STACK_DIR/jwt_secret")}
# The secret of service-to-service credentials (the BFF, the saga and every service), apart
# from the JWT secret; readable by the owner only.
[ -s "$STACK_DIR/internal_secret" ] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$STACK_DIR/internal_secret")
chmod 600 "$STACK_DIR/internal_secret"
export INTERNAL_SECRET=${INTERNAL_SECRET:-$(cat "$STACK_DIR/internal_secret")}
export ADMIN_EMAIL=${ADMIN_EMAIL:-admin@example.com}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-$(cat "$STACK_DIR/admin_password")}
export RUST_LOG=${RUST_LOG:-info}
# The BFF's throttling of log-in, registration and refresh (see bff/src/throttle.rs): the
# defaults unless given. The test suite registers and logs in hundreds of customers from one
# address, so a test stack (scripts/test.sh) raises the per-client rates.
export REGISTER_PER_CLIENT_PER_MINUTE=${REGISTER_PER_CLIENT_PER_MINUTE:-30}
export REFRESH_PER_CLIENT_PER_MINUTE=${REFRESH_PER_CLIENT_PER_MINUTE:-120}
export LOGIN_FREE_FAILURES_PER_CLIENT=${LOGIN_FREE_FAILURES_PER_CLIENT:-50}
export WS_MESSAGES_PER_SECOND=${WS_MESSAGES_PER_SECOND:-20}
# The storefront and back office the BFF serves at / (built by web/build.sh during `up`).
export WEB_DIR=${WEB_DIR:-$ROOT/web/dist}

# Tracing (TRACING=1, as given, else what the last `up` of this stack directory used): every
# service exports its spans over OTLP/HTTP to a collector of the stack's own (Rotel), which
# writes them to the Kafka topic $OTEL_TRACES_TOPIC as OTLP JSON (one trace per request: the
# W3C trace context goes along gRPC calls and Kafka records).
TRACING=${TRACING:-$(cat "$STACK_DIR/tracing" 2>/dev/null || echo 0)}
OTLP_GRPC_PORT=${OTLP_GRPC_PORT:-$((4317 + O))}
OTLP_HTTP_PORT=${OTLP_HTTP_PORT:-$((4318 + O))}
OTEL_TRACES_TOPIC=${OTEL_TRACES_TOPIC:-otel.traces}

INFRA=(tansu mongo envoy)
[ "$TRACING" = 1 ] && INFRA+=(collector)
INFRA+=(maildev)
[ "$PG_PRIVATE" = 1 ] && [ -z "$EXTERNAL_PG" ] && INFRA=(postgres "${INFRA[@]}")

# The newest PostgreSQL server binaries on the machine (Debian's layout), for PG_PRIVATE.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

# PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then printf '%s\n' setpriv --reuid=postgres --regid=postgres --init-groups --; fi
}

# A private cluster's data directory, created on first start.
init_private_pg() {
  [ -s "$DATA/pg/PG_VERSION" ] && return 0
  local bin; bin=$(pg_bin)
  [ -x "$bin/initdb" ] || die "PG_PRIVATE=1 needs PostgreSQL's server binaries (Debian: apt-get install postgresql)"
  mkdir -p "$DATA/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$DATA/pg"
  local -a run; mapfile -t run < <(as_pg_user)
  "${run[@]}" "$bin/initdb" -D "$DATA/pg" -U postgres -A trust --no-sync >"$LOGS/postgres-init.log" 2>&1 ||
    die "initdb failed (log: $LOGS/postgres-init.log)"
}

# The command line of a component, one word per line.
cmd_of() {
  case "$1" in
    postgres)
      as_pg_user
      # A test cluster: a killed process loses nothing (the OS keeps the files), so no fsync.
      printf '%s\n' "$(pg_bin)/postgres" -D "$DATA/pg" -p "$PG_PORT" -c unix_socket_directories= \
        -c "listen_addresses=$HOST" -c max_connections=300 -c fsync=off -c full_page_writes=off ;;
    # The broker keeps nothing across a restart, so each start is a new cluster, and says so
    # with a cluster id of its own: the projectors replay from the store's republish.
    tansu) printf '%s\n' "$TOOLS_BIN/tansu" broker \
        --listener-url "tcp://$HOST:$KAFKA_PORT" --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
        --storage-engine memory://tansu/ --cluster-id "commerce-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" ;;
    mongo)
      if command -v mongod >/dev/null; then
        printf '%s\n' mongod --replSet rs0 --bind_ip "$HOST" --port "$MONGO_PORT" --dbpath "$DATA/mongo"
      else
        printf '%s\n' "$TOOLS_BIN/secantusd-py" --host "$HOST" --port "$MONGO_PORT" --storage-path "$DATA/mongo"
      fi ;;
    # Spans in over OTLP (gRPC and HTTP), out to Kafka as OTLP JSON, for the tracing test and
    # anyone reading them; Kafka's own topics are untouched.
    collector) printf '%s\n' "$TOOLS_BIN/rotel-agent" start \
        --otlp-grpc-endpoint "$HOST:$OTLP_GRPC_PORT" --otlp-http-endpoint "$HOST:$OTLP_HTTP_PORT" \
        --exporter kafka \
        --kafka-exporter-brokers "$KAFKA_BROKERS" --kafka-exporter-traces-topic "$OTEL_TRACES_TOPIC" \
        --kafka-exporter-format json ;;
    maildev) printf '%s\n' "$TOOLS_BIN/maildev" --smtp "$MAILDEV_SMTP_PORT" --ip "$HOST" \
        --web "$MAILDEV_WEB_PORT" --web-ip "$HOST" --mail-directory "$DATA/mail" ;;
    envoy) printf '%s\n' "$TOOLS_BIN/envoy" -c "$STACK_DIR/envoy.yaml" --disable-hot-restart \
        --base-id "$ENVOY_PORT" -l warn ;;
    # The application services, from the table.
    *)
      [ -n "${SVC_BIN[$1]:-}" ] || die "unknown service: $1 (one of: ${INFRA[*]} ${SERVICES[*]})"
      local -a args=()
      [ "${SVC_ARGS[$1]}" = - ] || read -ra args <<<"$(fill "$1" "${SVC_ARGS[$1]}")"
      printf '%s\n' "$BIN_DIR/${SVC_BIN[$1]}" "${args[@]}" ;;
  esac
}

# How to tell a component is ready: "tcp PORT" or "http URL".
health_of() {
  case "$1" in
    postgres) echo "pg $PG_PORT" ;;
    tansu) echo "tcp $KAFKA_PORT" ;;
    mongo) echo "tcp $MONGO_PORT" ;;
    maildev) echo "http http://$HOST:$MAILDEV_WEB_PORT/api/healthz" ;;
    envoy) echo "http http://$HOST:$ENVOY_ADMIN_PORT/ready" ;;
    collector) echo "tcp $OTLP_HTTP_PORT" ;;
    *) if [ -n "${SVC_HEALTH[$1]:-}" ]; then fill "$1" "${SVC_HEALTH[$1]}"; fi ;;
  esac
}

skip_external() {
  case "$1" in
    tansu) [ -n "$EXTERNAL_KAFKA" ] ;;
    mongo) [ -n "$EXTERNAL_MONGO" ] ;;
    maildev) [ -n "$EXTERNAL_SMTP" ] ;;
    *) return 1 ;;
  esac
}

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

tcp_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_ready() {
  local name=$1 kind target deadline=$((SECONDS + ${2:-90}))
  read -r kind target <<<"$(health_of "$name")"
  while :; do
    if [ "$kind" = tcp ] && tcp_open "$target"; then return 0; fi
    # (Asks which cluster answers: another PostgreSQL on the port must not pass for ours.)
    if [ "$kind" = pg ] && [ "$(psql -tAqX "postgres://postgres@$HOST:$target/postgres" \
      -c 'SHOW data_directory' 2>/dev/null)" = "$DATA/pg" ]; then return 0; fi
    if [ "$kind" = http ] && curl -fsS -o /dev/null --max-time 2 "$target" 2>/dev/null; then return 0; fi
    if ! alive "$name"; then
      log "$name exited; last log lines:"; tail -n 30 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$name not ready in time; last log lines:"; tail -n 30 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

start_one() {
  local name=$1
  skip_external "$name" && { log "$name: using external endpoint"; return 0; }
  if alive "$name"; then log "$name already running (pid $(pid_of "$name"))"; return 0; fi
  mkdir -p "$LOGS" "$PIDS" "$DATA"
  [ "$name" = mongo ] && mkdir -p "$DATA/mongo"
  [ "$name" = maildev ] && mkdir -p "$DATA/mail"
  [ "$name" = postgres ] && init_private_pg
  [ "$name" = envoy ] && render_envoy
  local -a cmd; mapfile -t cmd < <(cmd_of "$name")
  [ -x "${cmd[0]}" ] || command -v "${cmd[0]}" >/dev/null || die "$name: ${cmd[0]} is missing (run: make up)"
  # setsid: the service outlives the shell that started it and gets its own process group.
  local level=$RUST_LOG
  [ "$name" = tansu ] && level=${TANSU_LOG:-warn}   # Tansu logs every request at info
  # With tracing on, the services (not the infrastructure) export their spans to the collector.
  local -a vars=("RUST_LOG=$level" "OTEL_SERVICE_NAME=${OTEL_SERVICE_NAME_PREFIX:-commerce-}$name")
  if [ "$TRACING" = 1 ] && [[ " ${SERVICES[*]} " == *" $name "* ]]; then
    vars+=("OTEL_EXPORTER_OTLP_ENDPOINT=http://$HOST:$OTLP_HTTP_PORT")
  fi
  env "${vars[@]}" setsid "${cmd[@]}" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  wait_ready "$name" || die "$name failed to start (log: $LOGS/$name.log)"
  [ "$name" = mongo ] && init_mongod
  log "$name up (pid $(pid_of "$name"))"
}

init_mongod() {
  command -v mongod >/dev/null || return 0
  command -v mongosh >/dev/null || die "mongod needs mongosh to initiate its replica set"
  mongosh --quiet --port "$MONGO_PORT" --eval \
    "try { rs.status().ok } catch (e) { rs.initiate({_id:'rs0',members:[{_id:0,host:'$HOST:$MONGO_PORT'}]}).ok }" >/dev/null
}

stop_one() {
  local name=$1 sig=${2:-TERM} p
  # PostgreSQL's SIGTERM waits for every client to leave; SIGINT is its fast shutdown.
  [ "$name" = postgres ] && [ "$sig" = TERM ] && sig=INT
  p=$(pid_of "$name")
  if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then rm -f "$PIDS/$name.pid"; return 0; fi
  kill "-$sig" "$p" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$p" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$p" 2>/dev/null || true; fi
    sleep 0.05
  done
  rm -f "$PIDS/$name.pid"
  log "$name stopped ($sig)"
}

render_envoy() {
  sed -e "s/port_value: 8080/port_value: $ENVOY_PORT/" \
      -e "s/port_value: 8000/port_value: $BFF_PORT/" \
      -e "s/port_value: 8090/port_value: $PAYMENT_TOKENS_PORT/" \
      -e "s/port_value: 9901/port_value: $ENVOY_ADMIN_PORT/" \
      -e "s/max_tokens: 400/max_tokens: $ENVOY_RATE_LIMIT/" \
      -e "s/tokens_per_fill: 400/tokens_per_fill: $ENVOY_RATE_LIMIT/" \
      -e "s/max_tokens: 200/max_tokens: $ENVOY_CLIENT_RATE_LIMIT/" \
      -e "s/tokens_per_fill: 200/tokens_per_fill: $ENVOY_CLIENT_RATE_LIMIT/" \
      -e "s/max_tokens: 201/max_tokens: $ENVOY_TOKEN_RATE_LIMIT/" \
      -e "s/tokens_per_fill: 201/tokens_per_fill: $ENVOY_TOKEN_RATE_LIMIT/" \
      "$ROOT/bff/envoy/envoy.yaml" >"$STACK_DIR/envoy.yaml"
}

pg_admin_url() {
  # The same server, database `postgres`, for CREATE/DROP DATABASE.
  echo "${DATABASE_URL%/*}/postgres"
}

prepare_postgres() {
  if [ -z "$EXTERNAL_PG" ]; then
    if [ "$PG_PRIVATE" = 1 ]; then
      start_one postgres
    elif ! pg_isready -q -h "$HOST" -p 5432 2>/dev/null; then
      log "starting the local PostgreSQL cluster"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || \
        die "no PostgreSQL on $HOST:5432; set DATABASE_URL"
    fi
    local admin; admin=$(pg_admin_url)
    if [ "${FRESH:-0}" = 1 ]; then
      psql -q "$admin" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
    fi
    if [ "$(psql -tAq "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
      psql -q "$admin" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
      log "created database $PG_DB"
    fi
  fi
}

build() {
  if [ "${SKIP_BUILD:-0}" = 1 ]; then return 0; fi
  log "building services ($PROFILE)"
  local flag=(--release)
  case "$PROFILE" in release) ;; dev|debug) flag=() ;; *) flag=(--profile "$PROFILE") ;; esac
  (cd "$ROOT" && cargo build --locked "${flag[@]}" -p command-services -p projectors -p query-services -p bff -p commerce-cli --bins)
}

print_env() {
  cat <<EOV
GRAPHQL_URL=http://$HOST:$ENVOY_PORT/graphql
BFF_URL=http://$HOST:$BFF_PORT/graphql
KAFKA_BROKERS=$KAFKA_BROKERS
MONGODB_URI=$MONGODB_URI
MONGODB_DB=$MONGODB_DB
DATABASE_URL=$DATABASE_URL
ENVOY_ADMIN_URL=http://$HOST:$ENVOY_ADMIN_PORT
INTERNAL_SECRET_FILE=$STACK_DIR/internal_secret
ADMIN_EMAIL=$ADMIN_EMAIL
ADMIN_PASSWORD=$ADMIN_PASSWORD
JWT_SECRET_FILE=$STACK_DIR/jwt_secret
MAILDEV_URL=$([ -n "$EXTERNAL_SMTP" ] || echo "http://$HOST:$MAILDEV_WEB_PORT")
EOV
  # Per service of the table: its URL variable (CART_COMMAND_URL, ...), and its admin
  # endpoint as <SERVICE>_ADMIN_URL (tests/tests/e2e/dashboards.rs scrapes each).
  local s admin
  for s in "${SERVICES[@]}"; do
    [ "${SVC_URL[$s]}" = - ] || printf '%s=http://%s:%s\n' "${SVC_URL[$s]}" "$HOST" "$(fill "$s" '{port}')"
    admin=${SVC_ADMIN[$s]}
    [ "$admin" = - ] || printf '%s_URL=http://%s:%s\n' "${admin%_PORT}" "$HOST" "$(fill "$s" '{admin}')"
  done
  if [ "$TRACING" = 1 ]; then
    printf 'OTLP_HTTP_URL=http://%s:%s\nOTEL_TRACES_TOPIC=%s\n' "$HOST" "$OTLP_HTTP_PORT" "$OTEL_TRACES_TOPIC"
  fi
}

up() {
  "$ROOT/scripts/install-tools.sh"
  build
  [ "${SKIP_WEB:-0}" = 1 ] || "$ROOT/web/build.sh"
  if [ "${FRESH:-0}" = 1 ]; then
    down >/dev/null 2>&1 || true
    rm -rf "$DATA"
  fi
  mkdir -p "$LOGS" "$PIDS" "$DATA"
  echo "$PROFILE" >"$STACK_DIR/profile"
  echo "$PG_PRIVATE" >"$STACK_DIR/pg_private"
  echo "$TRACING" >"$STACK_DIR/tracing"
  prepare_postgres
  for s in "${INFRA[@]}" "${SERVICES[@]}"; do start_one "$s"; done
  (umask 077; print_env >"$STACK_DIR/stack.env")
  chmod 600 "$STACK_DIR/stack.env"
  cat <<EOM

The commerce stack is up. Logs: $LOGS   Data: $DATA

  Storefront:            http://$HOST:$ENVOY_PORT/   (back office: /admin)
  GraphQL (via Envoy):   http://$HOST:$ENVOY_PORT/graphql   (GraphiQL: open it in a browser)
  Subscriptions (ws):    ws://$HOST:$ENVOY_PORT/graphql/ws
  Envoy admin:           http://$HOST:$ENVOY_ADMIN_PORT
  Mail (MailDev):        $([ -n "$EXTERNAL_SMTP" ] && echo "sent to $SMTP_URL${SMTP_HOST:-}" || echo "http://$HOST:$MAILDEV_WEB_PORT/   (SMTP $HOST:$MAILDEV_SMTP_PORT; REST: GET /api/email)")
  Kafka (Tansu):         $KAFKA_BROKERS
  Traces:                $([ "$TRACING" = 1 ] && echo "OTLP http://$HOST:$OTLP_HTTP_PORT -> Rotel -> Kafka topic $OTEL_TRACES_TOPIC" || echo "off (TRACING=1 turns them on)")
  MongoDB:               $MONGODB_URI
  PostgreSQL:            $DATABASE_URL
  gRPC cart commands:    $HOST:$CART_COMMAND_PORT   (health + reflection: grpcurl -plaintext ...)
  gRPC cart queries:     $HOST:$CART_QUERY_PORT
  gRPC shop queries:     $HOST:$SHOP_QUERY_PORT
  gRPC commands:         order $ORDER_COMMAND_PORT, product $PRODUCT_COMMAND_PORT, payment $PAYMENT_COMMAND_PORT, user $USER_COMMAND_PORT
  Admin account:         $ADMIN_EMAIL, password in $STACK_DIR/admin_password   (log in with the login mutation)
  Operator CLI:          scripts/stack.sh cli --help   (e.g. scripts/stack.sh cli projections status)
                         or: set -a; . $STACK_DIR/stack.env; set +a; $BIN_DIR/commerce --help

Stop it with: make down   (data kept; \`scripts/stack.sh down --wipe\` deletes it)
EOM
}

down() {
  local wipe=0
  [ "${1:-}" = --wipe ] && wipe=1
  local all=("${INFRA[@]}" "${SERVICES[@]}") i
  # A private PostgreSQL is stopped whatever PG_PRIVATE says now (its pid file tells): the
  # wipe below must never pull its data directory from under a running postmaster.
  [[ " ${all[*]} " == *" postgres "* ]] || all=(postgres "${all[@]}")
  for ((i = ${#all[@]} - 1; i >= 0; i--)); do stop_one "${all[$i]}"; done
  if [ $wipe = 1 ]; then
    rm -rf "$DATA"
    # The read models and checkpoints live in PostgreSQL: on the machine's server (a private
    # cluster's data went with $DATA) the stack's database goes too, else the shop would
    # show what the wiped store no longer holds (the projectors would also notice, by the
    # store's identity, and rebuild).
    if [ -z "$EXTERNAL_PG" ] && [ "$PG_PRIVATE" != 1 ] && pg_isready -q -h "$HOST" -p "$PG_PORT" 2>/dev/null; then
      psql -q "$(pg_admin_url)" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null &&
        log "database $PG_DB dropped"
    fi
    log "data wiped"
  fi
}

cli() {
  local bin=$BIN_DIR/commerce
  [ -x "$bin" ] || die "$bin is missing (run: make up)"
  set -a
  # shellcheck disable=SC1090
  [ -s "$STACK_DIR/stack.env" ] && . "$STACK_DIR/stack.env"
  set +a
  exec "$bin" "$@"
}

status() {
  local s
  for s in "${INFRA[@]}" "${SERVICES[@]}"; do
    if alive "$s"; then printf '%-16s running  pid %s\n' "$s" "$(pid_of "$s")"
    elif skip_external "$s"; then printf '%-16s external\n' "$s"
    else printf '%-16s stopped\n' "$s"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) shift; down "$@" ;;
  status) status ;;
  env) print_env ;;
  cli) shift; cli "$@" ;;
  start) start_one "${2:?service}" ;;
  stop) stop_one "${2:?service}" TERM ;;
  kill) stop_one "${2:?service}" KILL ;;
  restart) stop_one "${2:?service}" TERM; start_one "$2" ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
