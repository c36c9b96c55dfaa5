#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end suites against the real API
# with a real Redis and real databases, first SQLite, then PostgreSQL. Starts its own
# private Redis and PostgreSQL on free loopback ports and stops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

[ -d node_modules ] || { note "installing npm dependencies"; npm install --no-audit --no-fund; }
ensure_redis_binary
ensure_postgres_binary
ensure_chromium_binary

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tagflow-test.XXXXXX")
cleanup() { stop_redis "$WORK/redis"; stop_postgres "$WORK/pg"; rm -rf "$WORK"; }
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chmod 755 "$WORK"

TEST_REDIS_URL=$(start_redis "$WORK/redis")
TEST_PG_URL=$(start_postgres "$WORK/pg")
export TEST_REDIS_URL TEST_PG_URL TEST_WORK_DIR="$WORK"
note "redis at $TEST_REDIS_URL, postgres at $TEST_PG_URL"
# Scratch directories the tests make (worker work dirs, stand-in binaries) go away with $WORK.
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"

# CI has just built the same tree (TAGFLOW_BUILT=1); otherwise the suites run what the sources say now.
[ "${TAGFLOW_BUILT:-}" = 1 ] || npm run build
npm run test:unit
# Two API processes on one SQLite file are not a supported setup, and SQLite cannot be restarted apart
# from the API: the replica and restart suites run on PostgreSQL.
TEST_DATABASE=sqlite npm run test:e2e -- --testPathIgnorePatterns 'replicas|postgres-restart'
TEST_DATABASE=postgres npm run test:e2e
