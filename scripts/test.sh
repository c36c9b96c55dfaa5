#!/usr/bin/env bash
# The test suite: unit tests, then the end-to-end suites against the real API with a real
# Redis and real databases (SQLite, then PostgreSQL). Starts its own private Redis and
# PostgreSQL on free loopback ports and stops them afterwards.
#
#   npm test                               everything, then the core suites again through PgBouncer
#   npm test -- --db sqlite                the e2e suites on one database (sqlite or postgres)
#   npm test -- dataflow flow              only the suites whose path matches (unit and e2e)
#   npm test -- --unit | --e2e             one kind only
#   npm test -- --workers 1                e2e suites one at a time (default: E2E_WORKERS or 4)
#   npm test -- --pgbouncer api control    e2e suites on PostgreSQL through PgBouncer (transaction
#                                          pooling); without names, the core set (PGBOUNCER_CORE)
#
# Builds first when the sources are newer than dist/ (TAGFLOW_BUILT=1: the caller just built).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

usage() { sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dbs=(sqlite postgres)
kinds=(unit e2e)
workers="${E2E_WORKERS:-4}"
pgbouncer=0
patterns=()
while [ $# -gt 0 ]; do
  case "$1" in
    --db) [ $# -ge 2 ] || usage; case "$2" in sqlite|postgres) dbs=("$2") ;; *) usage ;; esac; shift 2 ;;
    --db=*) case "${1#--db=}" in sqlite|postgres) dbs=("${1#--db=}") ;; *) usage ;; esac; shift ;;
    --unit) kinds=(unit); shift ;;
    --e2e) kinds=(e2e); shift ;;
    --workers) [ $# -ge 2 ] || usage; workers="$2"; shift 2 ;;
    --pgbouncer) pgbouncer=1; shift ;;
    -h|--help) usage ;;
    -*) echo "tagflow: unknown option $1" >&2; usage ;;
    *) patterns+=("$1"); shift ;;
  esac
done
if [ $pgbouncer = 1 ]; then dbs=(postgres); kinds=(e2e); fi
has() { local x; for x in "${@:2}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
match=()
[ ${#patterns[@]} -gt 0 ] && match=(--testPathPatterns "${patterns[@]}")

# Suites that do not depend on the database (they run once, in the first database's pass);
# suites that need PostgreSQL (several API processes on one database; restarting it); and
# suites that act on the whole machine (killing every process of a user), run alone after
# the others.
DB_FREE='test/(ui|worker|worker-isolation|worker-keys|cli|client|examples|queue|operations)\.e2e'
PG_ONLY='test/(replicas|scale-out|startup|pooling|statistics|postgres-restart|redis-failover)\.e2e'
ALONE='test/worker-isolation\.e2e'
# Suites run again on PostgreSQL through PgBouncer in transaction pooling mode by a full run
# (and by --pgbouncer without names): what shared deployments put between the API and the
# database must not break it (no session state, no startup parameters it refuses). The engine's
# quicker suites, replicas migrating together, the pooling and statistics checks; flow and
# settle pass through it too but take minutes (npm test -- --pgbouncer flow settle).
PGBOUNCER_CORE='test/(api|dataflow|failures|control|dispatch|startup|pooling|statistics)\.e2e'
# A full run: every suite on each database, then the core set through PgBouncer.
full=0
if [ ${#patterns[@]} -eq 0 ] && [ $pgbouncer = 0 ] && has e2e "${kinds[@]}" && has postgres "${dbs[@]}"; then full=1; fi

if has unit "${kinds[@]}"; then
  npm run test:unit -- ${match[@]+"${match[@]}"} --passWithNoTests
fi
has e2e "${kinds[@]}" || exit 0

[ -d node_modules ] || { note "installing npm dependencies"; npm install --no-audit --no-fund; }
ensure_redis_binary
has postgres "${dbs[@]}" && ensure_postgres_binary
if [ $pgbouncer = 1 ] || [ $full = 1 ]; then ensure_pgbouncer_binary; fi
if [ ${#patterns[@]} -eq 0 ] || printf '%s\n' "${patterns[@]}" | grep -qi 'ui'; then ensure_chromium_binary; fi

if [ "${TAGFLOW_BUILT:-}" != 1 ]; then
  if [ ! -f dist/apps/api/main.js ] || [ ! -f dist/ui/index.html ] \
    || [ -n "$(find apps libs scripts/build.mjs nest-cli.json tsconfig.json tsconfig.build.json \( -name '*.ts' -o -name '*.tsx' -o -name '*.css' -o -name '*.json' -o -name '*.mjs' -o -name '*.html' \) -newer dist/apps/api/main.js -print -quit)" ]; then
    note "building"; npm run build >/dev/null
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tagflow-test.XXXXXX")
cleanup() { stop_pgbouncer "$WORK/pgbouncer"; stop_redis "$WORK/redis"; stop_postgres "$WORK/pg"; rm -rf "$WORK"; }
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chmod 755 "$WORK"

TEST_REDIS_URL=$(start_redis "$WORK/redis")
export TEST_REDIS_URL TEST_WORK_DIR="$WORK"
# Each suite's databases are copies of one migrated at the start: migrations run once a run.
mkdir -p "$WORK/sqlite"
export TEST_SQLITE_TEMPLATE="$WORK/sqlite/template.db"
DATABASE_URL="sqlite:$TEST_SQLITE_TEMPLATE" node dist/apps/api/main.js migrate
if has postgres "${dbs[@]}"; then
  TEST_PG_URL=$(start_postgres "$WORK/pg")
  export TEST_PG_URL TEST_PG_TEMPLATE=tf_template
  node -e 'const pg=require("pg");const c=new pg.Client(process.argv[1]);c.connect().then(()=>c.query("CREATE DATABASE tf_template")).then(()=>c.end(),(e)=>{console.error(e.message);process.exit(1)})' "$TEST_PG_URL"
  DATABASE_URL="${TEST_PG_URL%/*}/tf_template" node dist/apps/api/main.js migrate
fi
note "redis at $TEST_REDIS_URL${TEST_PG_URL:+, postgres at $TEST_PG_URL}"
# Scratch directories the tests make (worker work dirs, stand-in binaries) go away with $WORK.
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"

# Whether the suites run alone are among those asked for.
alone_selected() {
  [ ${#patterns[@]} -eq 0 ] && return 0
  local p f
  for f in test/*.e2e-spec.ts; do
    [[ "$f" =~ $ALONE ]] || continue
    for p in "${patterns[@]}"; do [[ "$f" =~ $p ]] && return 0; done
  done
  return 1
}

# Points the suites at a PgBouncer in front of the run's PostgreSQL; the harness still makes
# each suite's database on the server itself (TEST_PG_DIRECT_URL).
use_pgbouncer() {
  TEST_PG_DIRECT_URL=$TEST_PG_URL
  TEST_PG_URL=$(start_pgbouncer "$WORK/pgbouncer" "$TEST_PG_DIRECT_URL")
  export TEST_PG_URL TEST_PG_DIRECT_URL
  note "pgbouncer (transaction pooling) at $TEST_PG_URL"
}

if [ $pgbouncer = 1 ]; then
  unset TEST_PG_PREPARED # through PgBouncer 1.18 statements run unnamed, whatever the caller's shell says
  use_pgbouncer
  [ ${#patterns[@]} -gt 0 ] || match=(--testPathPatterns "$PGBOUNCER_CORE")
  TEST_DATABASE=postgres npm run test:e2e -- --maxWorkers="$workers" "${match[@]}" \
    --testPathIgnorePatterns "$DB_FREE" "$ALONE" --passWithNoTests
  exit 0
fi

# Directly on PostgreSQL the API runs its statements named (DATABASE_PREPARED_STATEMENTS=on,
# as a deployment without a pooler would); through PgBouncer above, unnamed (the default).
first=1
for db in "${dbs[@]}"; do
  if [ "$db" = postgres ]; then export TEST_PG_PREPARED=on; else unset TEST_PG_PREPARED; fi
  ignore=()
  [ "$db" = sqlite ] && ignore+=("$PG_ONLY")
  [ $first = 1 ] || ignore+=("$DB_FREE")
  TEST_DATABASE=$db npm run test:e2e -- --maxWorkers="$workers" ${match[@]+"${match[@]}"} \
    --testPathIgnorePatterns ${ignore[@]+"${ignore[@]}"} "$ALONE" --passWithNoTests
  if [ $first = 1 ] && alone_selected; then
    TEST_DATABASE=$db npm run test:e2e -- --runInBand --testPathPatterns "$ALONE"
  fi
  first=0
done
unset TEST_PG_PREPARED

if [ $full = 1 ]; then
  use_pgbouncer
  TEST_DATABASE=postgres npm run test:e2e -- --maxWorkers="$workers" --testPathPatterns "$PGBOUNCER_CORE"
fi
