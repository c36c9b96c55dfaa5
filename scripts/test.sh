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

# Which suites run on which database (once, PostgreSQL only, alone, through PgBouncer) is
# decided by the e2e projects of jest.config.mjs; this script chooses the projects.
ALONE='test/worker-isolation\.e2e'
# A full run: every suite on each database, and the core set through PgBouncer.
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

# A PgBouncer in front of the run's PostgreSQL, for the e2e-pgbouncer project.
if [ $pgbouncer = 1 ] || [ $full = 1 ]; then
  TEST_PGBOUNCER_URL=$(start_pgbouncer "$WORK/pgbouncer" "$TEST_PG_URL")
  export TEST_PGBOUNCER_URL
  note "pgbouncer (transaction pooling) at $TEST_PGBOUNCER_URL"
fi
[ -n "${TEST_PG_URL:-}" ] && export TEST_PG_SERVER_URL=$TEST_PG_URL

# One jest run over every database asked for, so the suites of both share the workers
# (the longest first) instead of one database waiting for the other's last suite.
projects=()
if [ $pgbouncer = 1 ]; then
  projects=(e2e-pgbouncer)
  [ ${#patterns[@]} -gt 0 ] && export TEST_PGBOUNCER_ANY=1
else
  for db in "${dbs[@]}"; do projects+=("e2e-$db"); done
  [ $full = 1 ] && projects+=(e2e-pgbouncer)
fi
export TEST_DB_FREE_ON=${dbs[0]}
npm run test:e2e -- --selectProjects "${projects[@]}" --maxWorkers="$workers" ${match[@]+"${match[@]}"} --passWithNoTests
if [ $pgbouncer = 0 ] && alone_selected; then
  npm run test:e2e -- --selectProjects e2e-alone --runInBand
fi
