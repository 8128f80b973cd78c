#!/usr/bin/env bash
# Starts, stops and reports the real infrastructure of the local mesh and the integration tests, without docker:
# etcd (Debian etcd-server), a single-node Kafka 3.9 broker in KRaft mode (jars from Maven Central),
# MariaDB and Redis (the machine's own, started here only when they are not running).
#
#   infra.sh up [--record FILE] [component…]   start what is not running; FILE gets the components this call started
#   infra.sh down [--only FILE]                  stop what infra.sh started (only those listed in FILE, if given)
#   infra.sh status                              one line per component
#
# Only processes this script started are ever stopped, by the pid it recorded under .run/owned/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
run="$root/.run"
owned="$run/owned"
# shellcheck source=deploy/local/env.sh
. "$root/deploy/local/env.sh"

ETCD_PEER_PORT=${IM_LOCAL_ETCD_PEER_PORT:-2380}
KAFKA_CONTROLLER_PORT=${IM_LOCAL_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/deploy/local/kafka/pom.xml")
MYSQL_DB=im_chat
MYSQL_SERVICE_USER=im_service
MYSQL_SERVICE_PASSWORD=im_service_password

say() { printf '%-8s %s\n' "$1" "$2"; }
fail() { say "$1" "FAILED: $2" >&2; exit 1; }

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -1; }
require_free() { # component port
  if port_open "$2"; then fail "$1" "port 127.0.0.1:$2 is taken by $(port_owner "$2"); free it or stop that process"; fi
}

owned_pid() { [ -f "$owned/$1" ] && cat "$owned/$1"; }
owned_alive() { local pid; pid=$(owned_pid "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
own() { mkdir -p "$owned"; echo "$2" >"$owned/$1"; [ -n "${record:-}" ] && echo "$1" >>"$record"; return 0; }

apt_install() { # component packages…
  local c=$1; shift
  if [ "$(id -u)" != 0 ]; then fail "$c" "not installed; run: sudo apt-get install -y $*"; fi
  say "$c" "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$run/apt-$c.log" 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$run/apt-$c.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$run/apt-$c.log" 2>&1; } ||
    { tail -5 "$run/apt-$c.log" >&2; fail "$c" "apt-get install $* failed (log: $run/apt-$c.log)"; }
}

wait_for() { # component seconds pid log command…
  local c=$1 secs=$2 pid=$3 log=$4; shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$log" >&2 || true
      fail "$c" "exited during start-up (log: $log)"
    fi
    [ $SECONDS -ge $deadline ] && { tail -20 "$log" >&2 || true; fail "$c" "not ready after ${secs}s (log: $log)"; }
    sleep 0.3
  done
}

# ---- etcd -------------------------------------------------------------------------------------------
etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$IM_LOCAL_ETCD_PORT" --command-timeout=2s endpoint health; }
etcd_up() {
  if port_open "$IM_LOCAL_ETCD_PORT"; then
    command -v etcdctl >/dev/null && etcd_healthy >/dev/null 2>&1 && { say etcd "already running on 127.0.0.1:$IM_LOCAL_ETCD_PORT"; return; }
    fail etcd "port 127.0.0.1:$IM_LOCAL_ETCD_PORT is taken by $(port_owner "$IM_LOCAL_ETCD_PORT"), which does not answer as etcd"
  fi
  require_free etcd "$ETCD_PEER_PORT"
  command -v etcd >/dev/null && command -v etcdctl >/dev/null || apt_install etcd etcd-server etcd-client
  mkdir -p "$run/etcd"
  nohup etcd --name im-local --data-dir "$run/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$IM_LOCAL_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$IM_LOCAL_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "im-local=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    >"$run/etcd/etcd.log" 2>&1 &
  local pid=$!
  own etcd "$pid"
  wait_for etcd 30 "$pid" "$run/etcd/etcd.log" etcd_healthy
  say etcd "started on 127.0.0.1:$IM_LOCAL_ETCD_PORT ($(etcd --version | head -1), pid $pid)"
}

# ---- Kafka (KRaft, single node) ---------------------------------------------------------------------
kafka_lib="$run/kafka/lib"
kafka_java=(java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j.configuration="file:$run/kafka/log4j.properties" -cp "$kafka_lib/*")
kafka_fetch() {
  [ -f "$kafka_lib/kafka_2.13-$KAFKA_VERSION.jar" ] && return
  command -v mvn >/dev/null || fail kafka "Maven (mvn) is needed to fetch the broker jars from Maven Central"
  say kafka "fetching Kafka $KAFKA_VERSION jars from Maven Central"
  rm -rf "$kafka_lib" && mkdir -p "$kafka_lib"
  mvn -B -q -f "$root/deploy/local/kafka/pom.xml" dependency:copy-dependencies -Dkafka.lib.dir="$kafka_lib" \
    >"$run/kafka/mvn.log" 2>&1 || { tail -20 "$run/kafka/mvn.log" >&2; rm -rf "$kafka_lib"; fail kafka "could not fetch the broker jars (log: $run/kafka/mvn.log)"; }
}
kafka_config() {
  cat >"$run/kafka/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$IM_LOCAL_KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$IM_LOCAL_KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/kafka/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=16
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.check.interval.ms=60000
EOF
  cat >"$run/kafka/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
EOF
}
kafka_up() {
  if owned_alive kafka; then say kafka "already running on 127.0.0.1:$IM_LOCAL_KAFKA_PORT (pid $(owned_pid kafka))"; kafka_topics; return; fi
  if port_open "$IM_LOCAL_KAFKA_PORT"; then
    case "$(port_owner "$IM_LOCAL_KAFKA_PORT")" in
      *java*) say kafka "a broker started elsewhere is listening on 127.0.0.1:$IM_LOCAL_KAFKA_PORT; using it"; kafka_topics; return ;;
      *) fail kafka "port 127.0.0.1:$IM_LOCAL_KAFKA_PORT is taken by $(port_owner "$IM_LOCAL_KAFKA_PORT")" ;;
    esac
  fi
  require_free kafka "$KAFKA_CONTROLLER_PORT"
  command -v java >/dev/null || apt_install kafka default-jre-headless
  mkdir -p "$run/kafka"
  kafka_fetch
  kafka_config
  if [ ! -f "$run/kafka/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${kafka_java[@]}" kafka.tools.StorageTool random-uuid 2>"$run/kafka/format.log") ||
      { tail -5 "$run/kafka/format.log" >&2; fail kafka "could not run kafka.tools.StorageTool (is the JDK 17+?)"; }
    "${kafka_java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$run/kafka/server.properties" >>"$run/kafka/format.log" 2>&1 ||
      { tail -5 "$run/kafka/format.log" >&2; fail kafka "could not format the storage in $run/kafka/data"; }
  fi
  nohup "${kafka_java[@]}" kafka.Kafka "$run/kafka/server.properties" >"$run/kafka/kafka.log" 2>&1 &
  local pid=$!
  own kafka "$pid"
  wait_for kafka 90 "$pid" "$run/kafka/kafka.log" port_open "$IM_LOCAL_KAFKA_PORT"
  say kafka "started Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$IM_LOCAL_KAFKA_PORT (pid $pid)"
  kafka_topics
}
kafka_topics() {
  (cd "$root" && node --import tsx deploy/local/kafka-topics.ts) || fail kafka "could not create the topics"
}

# ---- MariaDB / MySQL --------------------------------------------------------------------------------
mysql_root() { mysql --protocol=TCP -h 127.0.0.1 -P "$IM_LOCAL_MYSQL_PORT" -uroot "$@"; }
mysql_alive() { mysqladmin --protocol=TCP -h 127.0.0.1 -P "$IM_LOCAL_MYSQL_PORT" -uroot --connect-timeout=2 ping; }
mysql_up() {
  if mysql_alive >/dev/null 2>&1; then
    say mysql "already running on 127.0.0.1:$IM_LOCAL_MYSQL_PORT"
  else
    require_free mysql "$IM_LOCAL_MYSQL_PORT"
    [ -x /usr/sbin/mariadbd ] || apt_install mysql mariadb-server mariadb-client
    mkdir -p "$run/mysql"
    start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$run/mysql/mariadbd.pid" \
      --exec /usr/sbin/mariadbd -- --bind-address=127.0.0.1 --port="$IM_LOCAL_MYSQL_PORT" >"$run/mysql/start.log" 2>&1 ||
      fail mysql "could not start /usr/sbin/mariadbd (log: $run/mysql/start.log)"
    local pid; pid=$(cat "$run/mysql/mariadbd.pid")
    own mysql "$pid"
    wait_for mysql 60 "$pid" "$run/mysql/start.log" mysql_alive
    say mysql "started MariaDB on 127.0.0.1:$IM_LOCAL_MYSQL_PORT (pid $pid)"
  fi
  # The service account may use im_chat and the per-test databases im_chat_*.
  mysql_root -e "
    CREATE DATABASE IF NOT EXISTS \`$MYSQL_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    CREATE USER IF NOT EXISTS '$MYSQL_SERVICE_USER'@'localhost' IDENTIFIED BY '$MYSQL_SERVICE_PASSWORD';
    CREATE USER IF NOT EXISTS '$MYSQL_SERVICE_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_SERVICE_PASSWORD';
    GRANT ALL PRIVILEGES ON \`im\\_chat%\`.* TO '$MYSQL_SERVICE_USER'@'localhost';
    GRANT ALL PRIVILEGES ON \`im\\_chat%\`.* TO '$MYSQL_SERVICE_USER'@'127.0.0.1';
    FLUSH PRIVILEGES;" 2>"$run/mysql-provision.log" ||
    { cat "$run/mysql-provision.log" >&2; fail mysql "could not create database $MYSQL_DB and user $MYSQL_SERVICE_USER as root"; }
  say mysql "database $MYSQL_DB and user $MYSQL_SERVICE_USER ready"
}

# ---- Redis ------------------------------------------------------------------------------------------
redis_alive() { [ "$(redis-cli -h 127.0.0.1 -p "$IM_LOCAL_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_up() {
  if command -v redis-cli >/dev/null && redis_alive; then say redis "already running on 127.0.0.1:$IM_LOCAL_REDIS_PORT"; return; fi
  require_free redis "$IM_LOCAL_REDIS_PORT"
  command -v redis-server >/dev/null || apt_install redis redis-server redis-tools
  mkdir -p "$run/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$IM_LOCAL_REDIS_PORT" --save "" --appendonly no \
    --dir "$run/redis" --logfile "$run/redis/redis.log" --pidfile "$run/redis/redis.pid" ||
    fail redis "could not start redis-server (log: $run/redis/redis.log)"
  wait_for redis 20 "" "$run/redis/redis.log" redis_alive
  local pid; pid=$(cat "$run/redis/redis.pid")
  own redis "$pid"
  say redis "started on 127.0.0.1:$IM_LOCAL_REDIS_PORT (pid $pid)"
}

# ---- stop -------------------------------------------------------------------------------------------
stop_owned() { # component
  local c=$1 pid
  pid=$(owned_pid "$c") || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + 45))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; say "$c" "stopped (pid $pid did not exit in 45s; killed)"; else say "$c" "stopped (pid $pid)"; fi
  fi
  rm -f "$owned/$c"
}

components=(mysql redis etcd kafka)
cmd=${1:-}; shift || true
record=""; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) break ;;
  esac
done
selected=("$@"); [ ${#selected[@]} -eq 0 ] && selected=("${components[@]}")
mkdir -p "$run"

case "$cmd" in
  up)
    for c in "${selected[@]}"; do
      case "$c" in mysql|redis|etcd|kafka) "${c}_up" ;; *) fail "$c" "unknown component (expected: ${components[*]})" ;; esac
    done ;;
  down)
    # Reverse order of start: Kafka and etcd first, the databases last.
    for c in kafka etcd redis mysql; do
      if [ -n "$only" ]; then grep -qx "$c" "$only" 2>/dev/null || continue; fi
      stop_owned "$c"
    done ;;
  status)
    port_open "$IM_LOCAL_ETCD_PORT" && say etcd "listening on 127.0.0.1:$IM_LOCAL_ETCD_PORT" || say etcd "down"
    port_open "$IM_LOCAL_KAFKA_PORT" && say kafka "listening on 127.0.0.1:$IM_LOCAL_KAFKA_PORT" || say kafka "down"
    port_open "$IM_LOCAL_MYSQL_PORT" && say mysql "listening on 127.0.0.1:$IM_LOCAL_MYSQL_PORT" || say mysql "down"
    port_open "$IM_LOCAL_REDIS_PORT" && say redis "listening on 127.0.0.1:$IM_LOCAL_REDIS_PORT" || say redis "down" ;;
  *) echo "usage: $0 up [--record FILE] [component…] | down [--only FILE] | status" >&2; exit 2 ;;
esac
