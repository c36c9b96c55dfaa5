# Shared by start-local.sh and test.sh: find, install (Debian, as root) and start private
# Redis and PostgreSQL servers on free loopback ports. Source it; it defines functions only.

die() { echo "tagflow: $*" >&2; exit 1; }
note() { echo "tagflow: $*" >&2; }

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Installs Debian packages when we can (root + apt-get), else says exactly what is missing.
apt_install() {
  local what="$1"; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    note "installing $what with apt-get ($*)"
    if [ -z "${TAGFLOW_APT_UPDATED:-}" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
      export TAGFLOW_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
  else
    die "$what is not installed. Install it first, e.g.: sudo apt-get install -y $* (Debian/Ubuntu)"
  fi
}

ensure_redis_binary() {
  command -v redis-server >/dev/null 2>&1 || apt_install "Redis" redis-server
  command -v redis-server >/dev/null 2>&1 || die "redis-server still not found on PATH"
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

ensure_postgres_binary() {
  pg_bindir >/dev/null || apt_install "PostgreSQL" postgresql
  pg_bindir >/dev/null || die "PostgreSQL's initdb still not found"
}

# The browser the web UI's tests drive (Debian's chromium; CHROMIUM_PATH names another).
ensure_chromium_binary() {
  [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || apt_install "Chromium (for the web UI's browser tests)" chromium
  [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || die "no browser at ${CHROMIUM_PATH:-/usr/bin/chromium}: apt-get install -y chromium, or set CHROMIUM_PATH"
}

# start_redis DIR [PORT] -> prints the redis:// URL. Data (AOF) lives in DIR.
start_redis() {
  local dir="$1" port="${2:-$(free_port)}"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --save '' --maxmemory-policy noeviction >/dev/null || die "redis-server did not start (see $dir/redis.log)"
  local i
  for i in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && { echo "redis://127.0.0.1:$port"; return 0; }
    sleep 0.1
  done
  die "redis-server did not answer on port $port (see $dir/redis.log)"
}

stop_redis() {
  local dir="$1"
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}

# Runs a PostgreSQL command as the `postgres` user when we are root (the server refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres DIR -> prints a postgres:// URL of a throwaway cluster (trust auth, loopback only).
start_postgres() {
  local dir="$1" port bindir
  port=$(free_port)
  bindir=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  as_pg "$bindir/initdb" -D "$dir/data" -A trust -U tagflow --no-sync >"$dir/initdb.log" 2>&1 || die "initdb failed (see $dir/initdb.log)"
  postgres_up "$dir" "$port"
  echo "postgres://tagflow@127.0.0.1:$port/postgres"
}

# postgres_up DIR PORT: starts (again) the cluster start_postgres made in DIR, on PORT.
postgres_up() {
  local dir="$1" port="$2" bindir
  bindir=$(pg_bindir)
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c log_min_duration_statement=5000 -c log_lock_waits=on -c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=5000" \
    start >/dev/null || die "PostgreSQL did not start (see $dir/postgres.log)"
}

stop_postgres() {
  local dir="$1" bindir
  bindir=$(pg_bindir) || return 0
  [ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}

# start_redis_node DIR PORT [ARGS...]: one more redis-server (no persistence) for the replicated
# setups below; its pid file and log in DIR/PORT.*.
start_redis_node() {
  local dir="$1" port="$2"; shift 2
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/$port.pid" --logfile "$dir/$port.log" --save '' --appendonly no "$@" >/dev/null \
    || die "redis-server on $port did not start (see $dir/$port.log)"
  local i
  for i in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis-server did not answer on port $port (see $dir/$port.log)"
}

# start_redis_sentinel DIR -> prints "MASTER_PORT REPLICA_PORT SENTINELS" (SENTINELS:
# 127.0.0.1:P,... of three sentinels watching the master as "tagflow", quorum 2; a master
# is judged down after 1 s).
start_redis_sentinel() {
  local dir="$1" master replica ports=() p i
  master=$(free_port); start_redis_node "$dir" "$master"
  replica=$(free_port); start_redis_node "$dir" "$replica" --replicaof 127.0.0.1 "$master"
  for i in 1 2 3; do
    p=$(free_port)
    cat >"$dir/sentinel-$p.conf" <<CONF
bind 127.0.0.1
port $p
daemonize yes
pidfile $dir/$p.pid
logfile $dir/$p.log
dir $dir
sentinel monitor tagflow 127.0.0.1 $master 2
sentinel down-after-milliseconds tagflow 1000
sentinel failover-timeout tagflow 5000
sentinel parallel-syncs tagflow 1
CONF
    redis-server "$dir/sentinel-$p.conf" --sentinel >/dev/null || die "redis-sentinel on $p did not start (see $dir/$p.log)"
    ports+=("127.0.0.1:$p")
  done
  for i in $(seq 1 100); do
    redis-cli -p "${ports[0]##*:}" sentinel get-master-addr-by-name tagflow 2>/dev/null | grep -q "$master" && break
    sleep 0.1
  done
  echo "$master $replica $(IFS=,; echo "${ports[*]}")"
}

# start_redis_cluster DIR -> prints "127.0.0.1:P,..." of six nodes: three masters with a replica
# each; a node is judged failed after 1 s.
start_redis_cluster() {
  local dir="$1" nodes=() p i
  for i in 1 2 3 4 5 6; do
    p=$(free_port)
    start_redis_node "$dir" "$p" --cluster-enabled yes --cluster-port "$(free_port)" \
      --cluster-config-file "$dir/nodes-$p.conf" --cluster-node-timeout 1000 --cluster-replica-validity-factor 0
    nodes+=("127.0.0.1:$p")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || die "redis-cli --cluster create failed (see $dir/create.log)"
  for i in $(seq 1 100); do
    redis-cli -p "${nodes[0]##*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  (IFS=,; echo "${nodes[*]}")
}

# stop_redis_nodes DIR: every redis-server and sentinel started in DIR.
stop_redis_nodes() {
  local f
  for f in "$1"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  return 0
}

ensure_pgbouncer_binary() {
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || apt_install "PgBouncer" pgbouncer
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || die "pgbouncer still not found"
}

# start_pgbouncer DIR POSTGRES_URL -> prints a postgres:// URL through a PgBouncer in front of
# the cluster at POSTGRES_URL (start_postgres's: trust auth, loopback), in transaction pooling
# mode, as shared deployments run it: any database name is passed through, the same user.
start_pgbouncer() {
  local dir="$1" target="$2" port bin hostport user
  port=$(free_port)
  bin=/usr/sbin/pgbouncer
  [ -x "$bin" ] || bin=$(command -v pgbouncer)
  hostport=${target#*@}; hostport=${hostport%%/*}
  user=${target#postgres://}; user=${user%%@*}
  mkdir -p "$dir"
  printf '"%s" ""\n' "$user" >"$dir/users.txt"
  # No ignore_startup_parameters: a client that sends one PgBouncer refuses must fail here too.
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=${hostport%:*} port=${hostport##*:}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
server_idle_timeout = 10
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  # PgBouncer refuses to run as root: as the server's user then, like PostgreSQL.
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
  as_pg "$bin" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 || die "PgBouncer did not start (see $dir/pgbouncer.log)"
  local i
  for i in $(seq 1 50); do
    "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$port" && { echo "postgres://$user@127.0.0.1:$port/postgres"; return 0; }
    sleep 0.1
  done
  die "PgBouncer did not answer on port $port (see $dir/pgbouncer.log)"
}

stop_pgbouncer() {
  local dir="$1"
  [ -f "$dir/pgbouncer.pid" ] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
}
