#!/usr/bin/env bash
# Fails when proto/ breaks wire or generated-code compatibility (buf breaking, FILE rules) against a git ref,
# by default the previous commit. The ref's tree lacks the fetched third-party protos, so they are added
# to a copy of it before buf builds the image to compare against.
set -euo pipefail
cd "$(dirname "$0")/../.."
ref=${BUF_BREAKING_AGAINST:-HEAD~1}
if ! git rev-parse --verify -q "$ref^{commit}" >/dev/null; then
  echo "buf-breaking: no commit $ref to compare with (first commit or shallow clone); nothing to check"
  exit 0
fi
if [ -z "$(git ls-tree -d "$ref" proto)" ]; then
  echo "buf-breaking: $ref has no proto/; nothing to check"
  exit 0
fi
bash deploy/local/proto-deps.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$ref" proto buf.yaml | tar -x -C "$tmp"
mkdir -p "$tmp/.run" && cp -r .run/proto-deps "$tmp/.run/"
(cd "$tmp" && npx --prefix "$OLDPWD" buf build proto -o "$tmp/against.binpb")
npx buf breaking proto --against "$tmp/against.binpb"
echo "buf-breaking: proto/ is compatible with $ref"
