#!/usr/bin/env bash
# The local mesh: one process per service (auth, user, msg, group, fanout, gateway) on the local infrastructure
# (make infra-up first). Usage: bash deploy/local/mesh.sh up|down|status
#   up      applies migrations (with the demo data), starts every service's main.ts in the background, waits until
#           each printed "ready <port>", and prints the gateway's address; secrets are generated once into .run/mesh.env
#   down    stops the processes it started (SIGTERM, by recorded pid)
#   status  lists them
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/local/env.sh
run=.run/mesh
mkdir -p "$run" .run/logs
services=(auth user msg group fanout gateway)

alive() { [[ -f $run/$1.pid ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

up() {
  if [[ ! -f .run/mesh.env ]]; then
    {
      echo "export IM_MESH_SECRET='$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("base64url"))')'"
      echo "export IM_AUTH_SIGNING_KEYS='$(npx tsx services/auth/keygen.ts)'"
      echo "export IM_ADMIN_TOKEN='$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("base64url"))')'"
    } > .run/mesh.env
    chmod 600 .run/mesh.env
  fi
  source .run/mesh.env
  npx tsx platform/store/migrate-cli.ts up --contexts demo >/dev/null
  for s in "${services[@]}"; do
    if alive "$s"; then printf "%-8s " "$s"; echo "already running (pid $(cat "$run/$s.pid"))"; continue; fi
    : > ".run/logs/$s.log"
    nohup node --import tsx "services/$s/main.ts" >> ".run/logs/$s.log" 2>&1 &
    echo $! > "$run/$s.pid"
  done
  for s in "${services[@]}"; do
    for _ in $(seq 1 120); do
      grep -q '^ready ' ".run/logs/$s.log" && break
      alive "$s" || { printf "%-8s " "$s"; echo "exited; see .run/logs/$s.log:" >&2; tail -5 ".run/logs/$s.log" >&2; exit 1; }
      sleep 0.25
    done
    grep -q '^ready ' ".run/logs/$s.log" || { printf "%-8s " "$s"; echo "not ready after 30 s; see .run/logs/$s.log" >&2; exit 1; }
    printf "%-8s " "$s"; echo "ready on port $(grep -m1 '^ready ' ".run/logs/$s.log" | cut -d' ' -f2) (pid $(cat "$run/$s.pid"), log .run/logs/$s.log)"
  done
  echo "im-mesh is running in mesh mode at http://127.0.0.1:${IM_GATEWAY_PORT:-8080} (try: npm run chat -- --user alice --to bob)"
}

down() {
  for s in "${services[@]}"; do
    if alive "$s"; then kill -TERM "$(cat "$run/$s.pid")" && printf "%-8s " "$s"; echo "stopping (pid $(cat "$run/$s.pid"))"; fi
  done
  for s in "${services[@]}"; do
    for _ in $(seq 1 120); do alive "$s" || break; sleep 0.25; done
    rm -f "$run/$s.pid"
  done
}

status() {
  for s in "${services[@]}"; do
    if alive "$s"; then printf "%-8s " "$s"; echo "running (pid $(cat "$run/$s.pid"))"; else printf "%-8s " "$s"; echo "stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: bash deploy/local/mesh.sh up|down|status" >&2; exit 2 ;;
esac
