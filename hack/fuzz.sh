#!/usr/bin/env bash
# Runs each fuzz target given as package:FuzzName for FUZZTIME (a duration such as 30s, or an execution
# count such as 200000x). Called by `make fuzz`.
#
# Go 1.26's fuzz coordinator has a shutdown race (go.dev/issue/75804, fixed in Go 1.27): when a
# duration -fuzztime runs out, a worker's cancelled context can escape as the target failing with
# a bare "context deadline exceeded". It is not a finding: Go writes every failing input to
# <package>/testdata/fuzz/<FuzzName>/, and in this case writes none. So a duration run that fails
# with only that message and no new input is reported as the toolchain race, not as a failure;
# any other failure, or any new input, fails. Execution counts ("Nx") have no deadline to race,
# which is why CI uses them.
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-30s}
for t in "$@"; do
  pkg=${t%%:*} name=${t##*:}
  corpus="$pkg/testdata/fuzz/$name"
  before=$(find "$corpus" -type f 2>/dev/null | sort)
  echo "fuzzing $name in $pkg for $fuzztime"
  log=$(mktemp)
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  after=$(find "$corpus" -type f 2>/dev/null | sort)
  failure=$(sed -n "/^--- FAIL: ${name} /,/^FAIL\$/p" "$log" | sed '1d;$d' | sed 's/^ *//')
  rm -f "$log"
  [[ $rc -eq 0 ]] && continue
  new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$')
  if [[ $fuzztime != *x && -z $new && $failure == "context deadline exceeded" ]]; then
    echo "note: $name stopped with Go's fuzztime shutdown race (go.dev/issue/75804), no failing input was found; not a failure"
    continue
  fi
  [[ -n $new ]] && echo "failing input written to: $new"
  exit 1
done
