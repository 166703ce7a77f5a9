#!/usr/bin/env bash
# Realtime benchmark on 127.0.0.1, bounded in time: 1k / 5k / 10k WebSocket
# subscribers on one topic of `sen serve` (release, SQLite, the diagnostic
# publish endpoint of `sen-test-jobs`), events of 100 B and 1 KB published
# at rates that deliver 50k…300k events/s in total. Reports RSS per idle
# connection, delivered events/s, publish-to-receive p50/p99 (the publish
# includes its HTTP request and the replay-log write) and drops. The same
# client then runs against `rt-bench ceiling`, a bare fan-out server on the
# same WebSocket stack, for the ratio. Targets: 10k connections held with
# <= 20 KB RSS per idle connection; >= 200k delivered events/s to 10k
# subscribers with p99 <= 100 ms.
#
#   bench/realtime.sh                # 5 s per step
#   SECS=3 CONNS=1000,10000 bench/realtime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need.sh
need curl python3

SECS=${SECS:-5}
CONNS=${CONNS:-1000,5000,10000}
LEVELS=${LEVELS:-50000,100000,200000,300000}
SIZES=${SIZES:-100,1024}
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked -q -p sen --bins -p rt-bench

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Each subscriber count runs against a fresh server, so RSS per idle
# connection is measured from a clean start, not after an earlier round.
export RUST_LOG=warn SEN_AUTH_RATE_LIMITS=false SEN_REALTIME_MAX_CONNECTIONS_PER_USER=100000
export SEN_SECRET_KEY="bench-secret-key-$(date +%s%N)-0123456789abcdef"
exe=target/release/sen-test-jobs
: > "$work/sen.md"; : > "$work/ceiling.md"
for n in ${CONNS//,/ }; do
  port=$(free_port)
  rm -f "$work"/sen.db*
  export SEN_DATABASE_URL="sqlite://$work/sen.db" SEN_PORT=$port
  $exe migrate >/dev/null
  echo "a long pass phrase" | $exe admin create --email bench@example.com >/dev/null 2>&1
  $exe serve 2>>"$work/sen.log" & pids+=($!)
  sen_pid=$!
  wait_port "$port"
  token=$(curl -s -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"a long pass phrase"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  target/release/rt-bench load "ws://127.0.0.1:$port" "http://127.0.0.1:$port" "$token" "$sen_pid" \
    "$n" "$LEVELS" "$SIZES" "$SECS" sen >> "$work/sen.md"
  kill "$sen_pid"; wait "$sen_pid" 2>/dev/null || true

  cport=$(free_port)
  target/release/rt-bench ceiling "$cport" & pids+=($!)
  ceiling_pid=$!
  wait_port "$cport"
  target/release/rt-bench load "ws://127.0.0.1:$cport" "http://127.0.0.1:$cport" none "$ceiling_pid" \
    "$n" "$LEVELS" "$SIZES" "$SECS" ceiling >> "$work/ceiling.md"
  kill "$ceiling_pid"; wait "$ceiling_pid" 2>/dev/null || true
done

table=$(
  echo "| server | subscribers | payload | published for | delivered events/s | p50 ms | p99 ms | drops |"
  echo "|---|---:|---|---|---:|---:|---:|---:|"
  cat "$work/sen.md" "$work/ceiling.md"
)
echo "$table"

section=$(cat <<MD
## Realtime (bench/realtime.sh)

$(date +%F), $(nproc) cores, \`sen serve\` (release, SQLite) and the load client (tokio-tungstenite, one task per subscriber) on the same cores; ${SECS} s per step. "published for" is the total delivery rate aimed at (events/s per subscriber x subscribers). Latency runs from just before the publish request to receipt, so it includes the HTTP request and the replay-log write. Ceiling: \`rt-bench ceiling\`, one tokio broadcast behind the same axum/tungstenite WebSocket stack, no auth, topics, log or ordering.

$table
MD
)
python3 - "$section" <<'PY'
import re, sys
path = "bench/RESULTS.md"
text = open(path).read()
section = sys.argv[1].rstrip() + "\n"
pattern = re.compile(r"## Realtime \(bench/realtime\.sh\).*?(?=\n## |\Z)", re.S)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
