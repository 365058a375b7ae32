#!/usr/bin/env bash
# The driver regression scenarios (scenarios/linux/*, run by scripts/scenario; docs/linux.md
# "Regression scenarios"): real Linux on the timed models with a fault plan, its clock the
# simulation's, and the kernel-log lines each scenario expects at the simulated instants it
# expects them.
#  - Every scenario passes: the workload's exit status, then its expected lines in order,
#    timestamps included.
#  - The check is exact: the first scenario with one expected instant moved by a microsecond
#    fails, naming the line.
#   linux_scenarios_test.sh EMMCSIM_BINARY GUEST_INIT
# The kernel comes from EMMCSIM_UML_KERNEL; without it the test is skipped (77), unless
# EMMCSIM_REQUIRE_UML=1 (CI), where that fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export EMMCSIM_BIN=$(realpath "$1") EMMCSIM_GUEST_INIT=$(realpath "$2")
source "$here/uml_guest_checks.sh"
require_uml_kernel
command -v setarch >/dev/null || { echo "SKIP: setarch is not installed"; exit 77; }

work=$(mktemp -d /tmp/emmcsim-scenarios-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

for s in "$root"/scenarios/linux/*/; do
  name=$(basename "$s")
  if "$root/scripts/scenario" "$s" > "$work/$name.out" 2>&1; then
    pass "scenario $name: $(grep 'expected lines found' "$work/$name.out" | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')"
  else
    fail "scenario $name:"; sed 's/^/     /' "$work/$name.out"
  fi
done

# One instant moved by a microsecond: the scenario must fail and name that line.
first=$(ls -d "$root"/scenarios/linux/*/ | head -n 1)
cp -r "$first" "$work/moved"
line=$(grep -m1 -E '^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ' "$work/moved/expected.log")
moved=$(awk -v l="$line" 'BEGIN {
  match(l, /\[ *[0-9]+\.[0-9]+\]/); t = substr(l, RSTART + 1, RLENGTH - 2)
  printf "%s[%12.6f]%s", substr(l, 1, RSTART - 1), t + 0.000001, substr(l, RSTART + RLENGTH) }')
# Put the moved line where the original was.
awk -v l="$line" -v m="$moved" '$0 == l { print m; next } { print }' "$work/moved/expected.log" > "$work/moved/expected.tmp"
mv "$work/moved/expected.tmp" "$work/moved/expected.log"
if "$root/scripts/scenario" "$work/moved" > "$work/moved.out" 2>&1; then
  fail "a scenario with an instant moved by 1 us passed: $line -> $moved"
elif grep -qF -- "not found" "$work/moved.out" && grep -qF -- "$moved" "$work/moved.out"; then
  pass "a scenario with one instant moved by 1 us fails and names it ($moved)"
else
  fail "the moved scenario failed for another reason:"; sed 's/^/     /' "$work/moved.out"
fi

report_checks
