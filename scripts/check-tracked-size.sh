#!/usr/bin/env bash
# Fails when a tracked file is over 512 KB: binaries and generated data stay
# out of git (a submission over the size limit does not land at all).
set -euo pipefail
cd "$(dirname "$0")/.."
big=$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$1 > 524288 {print}')
if [ -n "$big" ]; then
  echo "tracked files over 512 KB (keep binaries and generated data out of git):"
  echo "$big"
  exit 1
fi
