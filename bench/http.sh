#!/usr/bin/env bash
# HTTP stack benchmark: bare hyper (the ceiling), bare axum (reference) and `sen serve` (release,
# full middleware: request id (on every log line), metrics, security headers,
# CORS, compression, body limit, panic guard, timeout) on 127.0.0.1, with
# wrk, for a bounded time each. Prints a table and writes bench/RESULTS.md.
#
#   bench/http.sh                 # 3 rounds, 8 s per target, 64 connections
#   DURATION=5 ROUNDS=5 CONNS=128 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
TARGET_RATIO=0.60

. bench/need.sh
need wrk python3

cargo build --release --locked -q -p sen -p hello-hyper

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# ms from wrk's "600.00us" / "2.10ms" / "1.02s"
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

# measure NAME URL -> appends "name rps p50 p99" to $work/results
measure() {
  local name=$1 url=$2 file
  file="$work/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_').txt"
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null 2>&1 || true   # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url" > "$file"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$file")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$file")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$file")")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$file" | tr '\n' ' ')
  [ -z "$errors" ] || echo "warning: $name: $errors" >&2
  echo "$name $rps $p50 $p99" >> "$work/results"
}

hello_port=$(free_port)
target/release/hello-hyper "$hello_port" & pids+=($!)
axum_port=$(free_port)
target/release/hello-axum "$axum_port" & pids+=($!)
sen_port=$(free_port)
export SEN_DATABASE_URL="sqlite://$work/sen.db" SEN_PORT=$sen_port RUST_LOG=info
export SEN_SECRET_KEY="bench-secret-key-$(date +%s%N)-0123456789abcdef"
target/release/sen migrate >/dev/null 2>&1
target/release/sen serve 2>"$work/sen.log" & pids+=($!)
wait_port "$hello_port"; wait_port "$axum_port"; wait_port "$sen_port"

# The machine's speed drifts (other tenants, thermal): the targets are
# measured in turn, round after round, and each ratio is the median of the
# per-round ratios to the ceiling measured in the same round.
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  measure "bare-hyper" "http://127.0.0.1:$hello_port/"
  measure "bare-axum" "http://127.0.0.1:$axum_port/"
  measure "sen-/healthz" "http://127.0.0.1:$sen_port/healthz"
  measure "sen-/api/v1/system/info" "http://127.0.0.1:$sen_port/api/v1/system/info"
done

table=$(python3 - "$work/results" "$TARGET_RATIO" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
target = float(sys.argv[2])
names = list(dict.fromkeys(r[0] for r in rows))
per = {n: [r for r in rows if r[0] == n] for n in names}
ceil = [float(r[1]) for r in per["bare-hyper"]]
print("| target | req/s (median) | p50 ms | p99 ms | ratio to ceiling (median of rounds) | verdict |")
print("|---|---:|---:|---:|---:|---|")
for n in names:
    rs = per[n]
    rps = [float(r[1]) for r in rs]
    ratio = statistics.median(x / c for x, c in zip(rps, ceil))
    verdict = ("ceiling" if n == "bare-hyper" else "reference: framework without middleware"
               if n == "bare-axum" else (f"meets >= {target}" if ratio >= target else f"BELOW {target}"))
    p50 = statistics.median(float(r[2]) for r in rs)
    p99 = statistics.median(float(r[3]) for r in rs)
    print(f"| {n} | {statistics.median(rps):.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | {verdict} |")
PY
)

echo
echo "$table"

{
  echo "# Benchmark results"
  echo
  echo "Written by the scripts in this directory; each section is the latest run of one script."
  echo
  echo "## HTTP stack (bench/http.sh)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, wrk -t$THREADS -c$CONNS -d${DURATION}s on 127.0.0.1 (load tool on the same cores), $ROUNDS rounds: each round measures every target in turn, and a ratio is the median of the rounds' ratios to that round's ceiling."
  echo "Ceiling: bare hyper answering a fixed JSON body. Sen: \`sen serve\` (release) on SQLite with the full middleware stack and logs at info."
  echo "Target: Sen keeps >= 60% of the ceiling measured in the same run."
  echo
  echo "$table"
  if [ -f bench/RESULTS.md ]; then
    awk '/^## / && !/^## HTTP stack/ {keep=1} /^## HTTP stack/ {keep=0} keep' bench/RESULTS.md | sed '1{/^$/d}' | { read -r first || exit 0; echo; echo "$first"; cat; }
  fi
} > "$work/RESULTS.md"
mv "$work/RESULTS.md" bench/RESULTS.md
echo
echo "written to bench/RESULTS.md"
