#!/usr/bin/env bash
# Fails when `buf generate` would change gen/: generates into a scratch folder and compares.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/proto-deps.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx buf generate --output "$out"
if ! diff -r -q gen "$out/gen" >/dev/null; then
  diff -r -u gen "$out/gen" | head -40 >&2 || true
  echo "gen-check: gen/ is out of date with proto/; run 'make generate' and commit gen/" >&2
  exit 1
fi
echo "gen-check: gen/ matches proto/"
