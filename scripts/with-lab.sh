#!/usr/bin/env bash
# Run a command with the lab up: start it if it is not up, and take it down afterwards only if
# this script started it (an engineer's running lab is left as it was).
set -uo pipefail
WOBBLE=.venv/bin/wobble
started=0
if ! $WOBBLE status --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["up"] else 1)'; then
  $WOBBLE up || exit 1
  started=1
fi
cleanup() { [ "$started" = 1 ] && $WOBBLE down; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$@"
