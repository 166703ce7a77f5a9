#!/usr/bin/env bash
# Page benchmark on 127.0.0.1, bounded in time: the dashboard and profile
# pages of `sen serve` (release, SQLite) with 10,000 users and 100,000 jobs
# in the tables (20,000 of them dead), loaded with wrk for DURATION seconds
# each at 4 connections. Target: p99 <= 50 ms per page (the issue's "server
# time"; loopback adds microseconds). Prints a table and updates the
# "Pages" section of bench/RESULTS.md.
#
#   bench/pages.sh            # 5 s per page
#   DURATION=3 bench/pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
. bench/need.sh
need wrk curl python3
cargo build --release --locked -q -p sen

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

port=$(free_port)
export SEN_DATABASE_URL="sqlite://$work/sen.db" SEN_PORT=$port RUST_LOG=warn SEN_DATA_DIR="$work/data"
export SEN_SECRET_KEY="bench-secret-key-$(date +%s%N)-0123456789abcdef" SEN_AUTH_RATE_LIMITS=false
target/release/sen migrate >/dev/null
echo "a long pass phrase" | target/release/sen admin create --email bench@example.com >/dev/null 2>&1

python3 - "$work/sen.db" <<'PY'
import json, sqlite3, sys, time, uuid
db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
us = now * 1000
ids = [str(uuid.uuid4()) for _ in range(10_000)]
db.executemany(
    "INSERT INTO sen_users (id, email, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    ((ids[i], f"user{i}@example.com", f"Người dùng {i}", now, now) for i in range(10_000)),
)
db.executemany(
    "INSERT INTO sen_api_keys (id, user_id, name, prefix, key_hash, permissions, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ((str(uuid.uuid4()), ids[i], f"key {i}", f"sen_{i:04d}", uuid.uuid4().hex, "[]", now) for i in range(10_000)),
)
dead = []
def jobs():
    for i in range(100_000):
        state = "dead" if i % 5 == 0 else "completed"
        errors = json.dumps([{"attempt": 1, "at": "2026-12-01T00:00:00Z", "error": f"boom {i}"}]) if state == "dead" else "[]"
        jid = str(uuid.uuid4())
        if state == "dead": dead.append(jid)
        yield (jid, ("default", "mail", "reports")[i % 3], "bench.noop", "{}", state, us, 1, 3, 60000, errors, us, us)
db.executemany(
    "INSERT INTO sen_jobs (id, queue, kind, args, state, run_at, attempt, max_attempts, timeout_ms, errors, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    jobs(),
)
db.commit()
open(sys.argv[1] + ".ids", "w").write(f"{ids[0]} {dead[0]}\n")
PY
read -r some_user some_dead < "$work/sen.db.ids"

target/release/sen serve 2>"$work/serve.log" & pids+=($!)
wait_port "$port"
base="http://127.0.0.1:$port"
token=$(curl -s -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"a long pass phrase"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

rows=""
for page in "/admin/apps" "/admin/apps/users?q=user12" "/admin/apps/users" "/admin/apps/users/$some_user" "/admin/apps/roles" \
    "/admin/apps/jobs?state=dead" "/admin/apps/jobs/$some_dead" "/admin/apps/credentials" "/admin/apps/files" \
    "/admin/apps/settings" "/admin/apps/audit" "/admin/apps/schedules" "/me"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base$page")
  [ "$status" = 200 ] || { echo "$page answered $status" >&2; exit 1; }
  wrk -t1 -c4 -d1s -H "Authorization: Bearer $token" "$base$page" >/dev/null 2>&1 || true
  wrk -t1 -c4 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$base$page" > "$work/out.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/out.txt")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$work/out.txt")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$work/out.txt")")
  verdict=$(awk -v p="$p99" 'BEGIN { print (p <= 50 ? "meets" : "ABOVE") }')
  rows="$rows| \`$page\` | $rps | $p50 | $p99 | <= 50 ms | $verdict |
"
done
table="| page | req/s (4 conns) | p50 ms | p99 ms | target p99 | verdict |
|---|---:|---:|---:|---|---|
$rows"
echo "$table"

section="## Pages (bench/pages.sh)

$(date -u +%F), $(nproc) cores, \`sen serve\` (release, SQLite) with 10,000 users, 10,000 API keys and 100,000 jobs in three queues (20,000 dead); wrk -t1 -c4 on the same cores, ${DURATION} s per page, signed in as the owner.

$table"
python3 - "$section" <<'PY'
import re, sys
path = "bench/RESULTS.md"
section = sys.argv[1]
text = open(path).read()
pattern = re.compile(r"## Pages \(bench/pages\.sh\).*?(?=\n## |\Z)", re.S)
text = pattern.sub(section.rstrip() + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
