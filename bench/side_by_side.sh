#!/bin/bash
# The peers' exact REST workload (../shared/peers/wrkrest.py: user token, wrk -t1 -c32,
# creates then gets by id), Parse 9 and actorbase alternated within one block:
# Parse, PG, SQLite, Parse, PG, SQLite, Parse. Run from the worktree (its code serves);
# needs ../shared/peers/setup.sh done and PostgreSQL at 127.0.0.1:5432 (user postgres).
#   sh bench/side_by_side.sh
set -u
parse() { /tmp/peers/parse/start.sh >/dev/null 2>&1; for i in $(seq 1 60); do curl -sf -H "X-Parse-Application-Id: bench" http://127.0.0.1:1337/parse/health >/dev/null && break; sleep 0.5; done; echo "parse $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"; python3 /work/shared/peers/wrkrest.py parse http://127.0.0.1:1337; kill $(cat /tmp/peers/parse/server.pid); sleep 1; }
ours() { # $1 = sqlite|pg
  D=$(mktemp -d); if [ $1 = pg ]; then psql -q postgresql://postgres@127.0.0.1:5432/postgres -c "DROP DATABASE IF EXISTS ab_perf_blk" -c "CREATE DATABASE ab_perf_blk"; URL=postgresql://postgres@127.0.0.1:5432/ab_perf_blk; else URL=sqlite:///$D/a.db; fi
  DATA_DIR=$D DATABASE_URL=$URL WEB_CONCURRENCY=1 PORT=8731 RATE_LIMIT=0 AUTH_RATE_LIMIT=100000 LOG_LEVEL=warning python -m actorbase serve > $D/log 2>&1 & P=$!
  for i in $(seq 1 60); do curl -sf http://127.0.0.1:8731/api/admin/health >/dev/null && break; sleep 0.5; done
  echo "$1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"; python3 /work/shared/peers/wrkrest.py seed http://127.0.0.1:8731
  kill $P; wait $P 2>/dev/null
  if [ $1 = pg ]; then psql -q postgresql://postgres@127.0.0.1:5432/postgres -c "DROP DATABASE ab_perf_blk WITH (FORCE)"; fi
}
parse; ours pg; ours sqlite; parse; ours pg; ours sqlite; parse
