#!/usr/bin/env bash
# The instruction count of one engine decision (5 environments, 200 Releases: the decide
# bench's snapshot), counted by callgrind: unlike a time, it does not move with the load on
# the machine. Compared with the recorded baseline in benches/decide.instructions: more than
# 5% over it fails. `--record` writes the current count as the new baseline (commit it with
# the change that moved it, and say why).
#
# Usage: bash benches/instructions.sh [--record]    (needs valgrind; about 4 minutes, most
# of it building the snapshot under valgrind). GREENLIGHT_CALLGRIND_OUT=FILE keeps the
# profile for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline_file=benches/decide.instructions
decisions=20

binary=$(cargo bench --locked --bench decide --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "decide":
        print(m["executable"])')
[ -x "$binary" ] || { echo "the decide bench did not build" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the instructions of the bench's measured_decisions are collected: building the
# snapshot (a simulated week of 200 Releases, deciding at every step) is not measured,
# though it runs (slowly) under valgrind.
GREENLIGHT_DECIDE_ONLY=$decisions valgrind --tool=callgrind \
  --collect-atstart=no --toggle-collect='decide::measured_decisions' \
  --callgrind-out-file="$work/callgrind.out" "$binary" >/dev/null 2>"$work/log"
total=$(sed -n 's/^==[0-9]*== Collected : //p' "$work/log")
[ -n "$total" ] && [ "$total" -gt 0 ] || {
  echo "callgrind collected nothing inside measured_decisions (inlined away?):" >&2
  cat "$work/log" >&2
  exit 1
}
per_decision=$(( total / decisions ))
echo "one decision (5 environments, 200 Releases): $per_decision instructions"
if [ -n "${GREENLIGHT_CALLGRIND_OUT:-}" ]; then
  cp "$work/callgrind.out" "$GREENLIGHT_CALLGRIND_OUT"
  echo "profile written to $GREENLIGHT_CALLGRIND_OUT (callgrind_annotate it)"
fi

if [ "${1:-}" = "--record" ]; then
  echo "$per_decision" > "$baseline_file"
  echo "recorded as the baseline in $baseline_file"
  exit 0
fi
baseline=$(cat "$baseline_file")
limit=$(( baseline + baseline / 20 ))
echo "baseline: $baseline (limit +5%: $limit)"
if [ "$per_decision" -gt "$limit" ]; then
  echo "a decision costs $(( (per_decision - baseline) * 100 / baseline ))% more instructions than the baseline: find what grew (valgrind --tool=callgrind, then callgrind_annotate), or re-record with --record and say why" >&2
  exit 1
fi
if [ "$per_decision" -lt $(( baseline - baseline / 10 )) ]; then
  echo "more than 10% below the baseline: record the improvement with --record"
fi
