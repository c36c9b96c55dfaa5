#!/usr/bin/env bash
# Starts Tagflow for local use: the API on http://127.0.0.1:8080 with the embedded SQLite
# database (./data/tagflow.db) and, unless REDIS_URL is set, a private redis-server on a
# free port with its data under ./data/redis. Installs what is missing (npm packages;
# redis-server through apt-get when run as root) or says exactly what to install.
# Keys: an admin key (./data/admin.token) and a worker key for the local worker
# (./data/worker.token), both mode 0600, made the first time.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js >= 20.19 is required (found $(node --version))"
[ -d node_modules ] || { note "installing npm dependencies (about 2 minutes the first time)"; npm install --no-audit --no-fund; }
if [ ! -f dist/apps/api/main.js ] || [ ! -f dist/ui/index.html ] \
  || [ -n "$(find apps libs \( -name '*.ts' -o -name '*.tsx' -o -name '*.css' \) -newer dist/apps/api/main.js -print -quit)" ]; then
  note "building"; npm run build >/dev/null
fi

mkdir -p data
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${OWN_REDIS:-}" ] && stop_redis data/redis
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${REDIS_URL:-}" ]; then
  ensure_redis_binary
  REDIS_URL=$(start_redis "$PWD/data/redis")
  OWN_REDIS=1
  note "started redis-server at $REDIS_URL (data in ./data/redis)"
fi
export REDIS_URL
export DATABASE_URL="${DATABASE_URL:-sqlite:./data/tagflow.db}"
export PORT="${PORT:-8080}" HOST="${HOST:-127.0.0.1}"
API_URL="http://$HOST:$PORT"
TAGS="${TAGFLOW_TAGS:-local}"

# The keys are written into the database here (no key passes through an environment a task
# could read): an admin key for you, and the worker's, granted only the local worker's tags.
# The local worker runs its tasks as you, so they can read your files, these included:
# `npm start` is for trying Tagflow on your own machine.
( umask 077; set -f
  for key in "admin admin *" "worker worker $TAGS"; do
    set -- $key
    out=$(node dist/apps/api/main.js keys create --name "local-$1" --role "$2" --tags "$3" --token-file "data/$1.token" 2>&1) \
      || die "could not write the local $1 key: $out"
  done )

node dist/apps/api/main.js &
pids+=($!)
if [ "${TAGFLOW_NO_WORKER:-}" != 1 ]; then
  # The worker registers as soon as the API answers (it retries until then).
  # No key reaches the worker's environment (its tasks inherit it).
  env -u TAGFLOW_ADMIN_TOKEN -u TAGFLOW_TOKEN -u API_TOKEN node dist/apps/worker/main.js --api "$API_URL" --name "local-$(hostname)" --tags "$TAGS" --token-file data/worker.token &
  pids+=($!)
fi
note "Tagflow API on $API_URL (database ${DATABASE_URL%%:*}); Ctrl-C stops it"
note "admin key in ./data/admin.token: export TAGFLOW_TOKEN=\$(cat data/admin.token), then curl -H \"Authorization: Bearer \$TAGFLOW_TOKEN\" ..."
note "web UI: $API_URL/ui (sign in with the admin key in ./data/admin.token)"
wait -n "${pids[@]}"
