#!/usr/bin/env bash
# The end-to-end tests (tests/tests/e2e, one binary) against a running stack, as `make test`
# runs them: module after module, each module's tests side by side. Some modules stop, kill
# or wipe parts of the stack the others use, so two modules never run at once (as when each
# was a binary of its own). Arguments are modules to run (default: all); every module runs
# even after one fails, and the exit status says whether all passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test -p e2e-tests --test e2e --locked --no-run
mapfile -t tests < <(cargo test -q -p e2e-tests --test e2e --locked -- --list --format terse 2>/dev/null |
  sed -n 's/: test$//p')
[ "${#tests[@]}" -gt 0 ] || { echo "e2e: no tests listed" >&2; exit 1; }
if [ "$#" -gt 0 ]; then modules=("$@"); else
  mapfile -t modules < <(printf '%s\n' "${tests[@]}" | cut -d: -f1 | sort -u)
fi

failed=()
for m in "${modules[@]}"; do
  mapfile -t names < <(printf '%s\n' "${tests[@]}" | grep "^$m::" || true)
  [ "${#names[@]}" -gt 0 ] || { echo "e2e: no module $m" >&2; failed+=("$m"); continue; }
  echo "== e2e $m (${#names[@]} tests)"
  cargo test -q -p e2e-tests --test e2e --locked -- --exact "${names[@]}" || failed+=("$m")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "e2e: failed modules: ${failed[*]}" >&2
  exit 1
fi
echo "e2e: ${#modules[@]} modules passed"
