#!/usr/bin/env bash
# Puts the third-party .proto files our contracts import (buf/validate/validate.proto) under .run/proto-deps.
# The Buf Schema Registry is not reachable from every build machine, so the file comes from the protovalidate
# jar on Maven Central, which ships it; the version matches the @bufbuild/protovalidate runtime in package.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=1.3.0
dest=.run/proto-deps
stamp="$dest/.protovalidate-$version"
[ -f "$stamp" ] && [ -f "$dest/buf/validate/validate.proto" ] && exit 0
command -v mvn >/dev/null || { echo "proto-deps: Maven (mvn) is required to fetch buf/validate/validate.proto" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! mvn -B -q dependency:copy -Dartifact="build.buf:protovalidate:$version" -DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1; then
  echo "proto-deps: could not fetch build.buf:protovalidate:$version from Maven Central:" >&2
  tail -20 "$tmp/mvn.log" >&2
  exit 1
fi
rm -rf "$dest" && mkdir -p "$dest"
(cd "$dest" && unzip -q -o "$tmp/protovalidate-$version.jar" 'buf/validate/validate.proto')
touch "$stamp"
