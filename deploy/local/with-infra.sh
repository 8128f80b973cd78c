#!/usr/bin/env bash
# Runs a command against the real infrastructure: starts (and installs) whatever is not running yet,
# exports the connection settings of env.sh, runs the command, then stops only what this call started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
started=$(mktemp)
cleanup() { bash "$here/infra.sh" down --only "$started"; rm -f "$started"; }
trap cleanup EXIT
bash "$here/infra.sh" up --record "$started"
"$@"
