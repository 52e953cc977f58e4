#!/usr/bin/env bash
# Writes the application services of docker-compose.yml, and the URL variables of its x-app
# environment, from deploy/services.tsv (the table scripts/stack.sh starts the same services
# from), between the `# >>> generated ... (TAG)` and `# <<< generated (TAG)` marker comments;
# everything else in the file is hand-written.
#
#   scripts/gen-compose.sh            rewrite docker-compose.yml
#   scripts/gen-compose.sh --check    change nothing; fail, with a diff, if the file is not
#                                     what the table gives (tests/tests/e2e/compose.rs runs this)
#
# In compose every service listens on 0.0.0.0 ({host}) and on the table's default ports
# (without PORT_OFFSET): each runs in a container of its own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TABLE=$ROOT/deploy/services.tsv
COMPOSE=$ROOT/docker-compose.yml
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

die() { printf 'gen-compose: error: %s\n' "$*" >&2; exit 1; }

# The table, as stack.sh reads it: one or more tabs between cells, `-` empty, `#` a comment.
NAMES=()
declare -A BIN ARGS PORT ADMIN URL CARGS DEPS DEF
while IFS=$'\t' read -r name bin args port admin extra _health url cargs deps _; do
  [[ -z $name || $name == \#* ]] && continue
  [ -n "$deps" ] || die "$TABLE: $name: too few columns"
  NAMES+=("$name")
  BIN[$name]=$bin ARGS[$name]=$args URL[$name]=$url CARGS[$name]=$cargs DEPS[$name]=$deps
  PORT[$name]=${port%%=*} ADMIN[$name]=${admin%%=*}
  IFS=, read -ra ports <<<"$port,$admin,$extra"
  for p in "${ports[@]}"; do
    [ "$p" = - ] && continue
    def=${p#*=}; def=${def%!}
    [[ ${p%%=*} =~ ^[A-Z_][A-Z0-9_]*$ && $def =~ ^[0-9]+$ ]] || die "$TABLE: $name: bad port $p (VAR=DEFAULT)"
    DEF[${p%%=*}]=$def
  done
done <"$TABLE"
[ ${#NAMES[@]} -gt 0 ] || die "$TABLE: no services"


# A cell with its placeholders filled in for compose.
fill() {
  local name=$1 s=$2 var
  while [[ $s =~ \{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
    case ${BASH_REMATCH[1]} in
      host) s=${s/"${BASH_REMATCH[0]}"/0.0.0.0}; continue ;;
      port) var=${PORT[$name]} ;;
      admin) var=${ADMIN[$name]} ;;
      *) var=${BASH_REMATCH[1]} ;;
    esac
    [ -n "${DEF[$var]:-}" ] || die "$TABLE: $name: no port for ${BASH_REMATCH[0]}"
    s=${s/"${BASH_REMATCH[0]}"/${DEF[$var]}}
  done
  printf '%s\n' "$s"
}

# Every placeholder must resolve (here, not in the subshells that fill the blocks).
for name in "${NAMES[@]}"; do
  fill "$name" "${ARGS[$name]} ${CARGS[$name]}" >/dev/null
  [ "${URL[$name]}" = - ] || fill "$name" '{port}' >/dev/null
done

# A YAML flow sequence of JSON strings: ["a", "b"].
json_list() {
  local out="" w
  for w in "$@"; do
    w=${w//\\/\\\\}; w=${w//\"/\\\"}
    out+="${out:+, }\"$w\""
  done
  printf '[%s]\n' "$out"
}

# The lines of one generated block, indented as its opening marker.
block() {
  local tag=$1 in=$2 name dep
  local -a words deps
  for name in "${NAMES[@]}"; do
    case "$tag" in
      urls)
        [ "${URL[$name]}" = - ] || printf '%s%s: http://%s:%s\n' "$in" "${URL[$name]}" "$name" "$(fill "$name" '{port}')" ;;
      services)
        words=("${BIN[$name]}")
        [ "${ARGS[$name]}" = - ] || read -ra words <<<"${BIN[$name]} $(fill "$name" "${ARGS[$name]}")"
        [ "${CARGS[$name]}" = - ] || { read -ra deps <<<"$(fill "$name" "${CARGS[$name]}")"; words+=("${deps[@]}"); }
        printf '%s%s:\n%s  <<: *app\n%s  command: %s\n' "$in" "$name" "$in" "$in" "$(json_list "${words[@]}")"
        if [ "${DEPS[$name]}" != - ]; then
          printf '%s  depends_on:\n%s    <<: *infra-deps\n' "$in" "$in"
          IFS=, read -ra deps <<<"${DEPS[$name]}"
          for dep in "${deps[@]}"; do
            printf '%s    %s:\n%s      condition: service_started\n' "$in" "$dep" "$in"
          done
        fi ;;
      *) die "$COMPOSE: unknown generated block ($tag)" ;;
    esac
  done
}

# docker-compose.yml with every generated block rewritten; each tag must appear once.
render() {
  local line tag="" in seen=""
  while IFS= read -r line || [ -n "$line" ]; do
    if [ -n "$tag" ]; then
      if [[ $line =~ ^[[:space:]]*#\ \<\<\<\ generated\ \(([a-z]+)\) ]]; then
        [ "${BASH_REMATCH[1]}" = "$tag" ] || die "$COMPOSE: block ($tag) closed as (${BASH_REMATCH[1]})"
        printf '%s\n' "$line"; tag=""
      fi
      continue
    fi
    printf '%s\n' "$line"
    if [[ $line =~ ^([[:space:]]*)#\ \>\>\>\ generated\ .*\(([a-z]+)\)[[:space:]]*$ ]]; then
      in=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}
      [[ " $seen " != *" $tag "* ]] || die "$COMPOSE: block ($tag) twice"
      seen+=" $tag"
      block "$tag" "$in"
    fi
  done <"$COMPOSE"
  [ -z "$tag" ] || die "$COMPOSE: block ($tag) is not closed"
  for tag in urls services; do
    [[ " $seen " == *" $tag "* ]] || die "$COMPOSE: no generated block ($tag)"
  done
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
render >"$tmp"
if cmp -s "$tmp" "$COMPOSE"; then
  [ $CHECK = 1 ] || echo "docker-compose.yml is up to date"
  exit 0
fi
if [ $CHECK = 1 ]; then
  diff -u "$COMPOSE" "$tmp" | sed "1,2s|$tmp|generated from deploy/services.tsv|" >&2 || true
  die "docker-compose.yml is not what deploy/services.tsv gives: run scripts/gen-compose.sh"
fi
cat "$tmp" >"$COMPOSE"
echo "docker-compose.yml: application services written from deploy/services.tsv"
