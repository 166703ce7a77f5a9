#!/usr/bin/env bash
# Identity benchmark on 127.0.0.1, bounded in time:
#   1. the raw argon2id hash rate of Sen's own parameters (m=19 MiB, t=2,
#      p=1) with as many threads as Sen's hashing slots (the ceiling), and
#      with every core (for reference);
#   2. login throughput of `sen serve` (release, SQLite, rate limits off)
#      against that ceiling (target >= 95 %), and, for reference, that of
#      a bare axum server that only hashes with Sen's hashing pool and
#      answers (`auth-floor`): what the machine allows any server;
#   3. GET /api/v1/me with an EdDSA access token (verify + one user read):
#      req/s (target >= 11,000) and p99 idle;
#   4. p99 of GET /api/v1/me while a login storm runs (target <= 2x idle).
# Prints a table and updates the "Identity" section of bench/RESULTS.md.
#
#   bench/auth.sh               # 9 login windows of 3 s; 3 rounds of 8 s for /me
#   WINDOW=2 WINDOWS=15 DURATION=5 ROUNDS=5 bench/auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-3}
WINDOWS=${WINDOWS:-9}
. bench/need.sh
need wrk curl python3
cargo build --release --locked -q -p sen -p auth-bench --bins

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }
rps_of() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99_of() { to_ms "$(awk '$1=="99%" {print $2}' "$1")"; }
errors_of() { awk '/Non-2xx|Socket errors/ {print}' "$1" | tr '\n' ' '; }

cores=$(nproc)
slots=${SLOTS:-$cores}
raw_all=$(target/release/auth-bench "$cores" "$DURATION")

port=$(free_port)
export SEN_DATABASE_URL="sqlite://$work/sen.db" SEN_PORT=$port RUST_LOG=warn
export SEN_SECRET_KEY="bench-secret-key-$(date +%s%N)-0123456789abcdef" SEN_AUTH_RATE_LIMITS=false
export SEN_AUTH_HASH_CONCURRENCY=$slots
target/release/sen migrate >/dev/null
echo "a long pass phrase" | target/release/sen admin create --email bench@example.com >/dev/null 2>&1
target/release/sen serve 2>"$work/sen.log" & pids+=($!)
floor_port=$(free_port)
target/release/auth-floor "$floor_port" "$slots" 2>"$work/floor.log" & pids+=($!)
wait_port "$port"
wait_port "$floor_port"
base="http://127.0.0.1:$port"
floor_base="http://127.0.0.1:$floor_port"
token=$(curl -s -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"a long pass phrase"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# Login throughput against its ceiling. The machine's speed drifts by
# several percent over tens of seconds (other tenants), so short windows
# alternate, ceiling first and last (R L R F R L R F ... R: L for Sen, F
# for the bare server), and each login window is compared with the mean of
# the ceilings right before and after it; the table shows the medians.
# Logins are counted by the server itself (its request counter, 200s only)
# over the middle of a running load, so neither connecting nor the
# requests cut off at the end count against it.
logins_done() {
  curl -s "$1/metrics" | awk '/^http_requests_total/ && /route="\/api\/v1\/auth\/login"/ && /status="200"/ {n += $NF} END {print n + 0}'
}
login_rate() { # <server's base URL>
  # Enough connections to keep every hashing slot busy.
  wrk -t2 -c8 -d"$((WINDOW + 3))s" -s bench/login.lua "$1/api/v1/auth/login" > "$work/login.txt" 2>&1 &
  local w=$! t0 c0 t1 c1
  sleep 0.5
  t0=$(date +%s.%N); c0=$(logins_done "$1")
  sleep "$WINDOW"
  t1=$(date +%s.%N); c1=$(logins_done "$1")
  kill -INT "$w" 2>/dev/null || true
  wait "$w" || true
  if [ "$c1" -le "$c0" ]; then
    echo "the server counted no logins (is /metrics on?): $(cat "$work/login.txt")" >&2
    exit 1
  fi
  [ -z "$(errors_of "$work/login.txt")" ] || echo "warning: login: $(errors_of "$work/login.txt")" >&2
  sleep 0.3 # the hashes still queued finish before the next ceiling
  awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", (b - a) / (e - s) }'
}
for b in "$base" "$floor_base"; do
  wrk -t2 -c8 -d2s -s bench/login.lua "$b/api/v1/auth/login" >/dev/null 2>&1 || true
done
sleep 0.3
raws=(); logins=(); login_ratios=(); floors=(); floor_ratios=(); over_floor=()
prev=$(target/release/auth-bench "$slots" "$WINDOW")
raws+=("$prev")
# Prints a window's ratio: its rate against the mean of the ceilings either side.
against() { awk -v l="$1" -v a="$2" -v b="$3" 'BEGIN { print l / ((a + b) / 2) }'; }
for window in $(seq 1 "$WINDOWS"); do
  l=$(login_rate "$base")
  next=$(target/release/auth-bench "$slots" "$WINDOW")
  raws+=("$next"); logins+=("$l")
  login_ratios+=("$(against "$l" "$prev" "$next")")
  echo "logins: window $window of $WINDOWS: $l/s against ceilings $prev and $next: ${login_ratios[-1]}" >&2
  prev=$next
  f=$(login_rate "$floor_base")
  next=$(target/release/auth-bench "$slots" "$WINDOW")
  raws+=("$next"); floors+=("$f")
  floor_ratios+=("$(against "$f" "$prev" "$next")")
  over_floor+=("$(awk -v l="${login_ratios[-1]}" -v f="${floor_ratios[-1]}" 'BEGIN { print l / f }')")
  echo "bare server: window $window of $WINDOWS: $f/s against ceilings $prev and $next: ${floor_ratios[-1]}" >&2
  prev=$next
done
raw=$(median "${raws[@]}"); login=$(median "${logins[@]}"); login_ratio=$(median "${login_ratios[@]}")
floor=$(median "${floors[@]}"); floor_ratio=$(median "${floor_ratios[@]}"); login_over_floor=$(median "${over_floor[@]}")

# /me throughput at 64 connections.
wrk -t2 -c64 -d2s -H "Authorization: Bearer $token" "$base/api/v1/me" >/dev/null 2>&1 || true
wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/me" > "$work/me.txt"
[ -z "$(errors_of "$work/me.txt")" ] || echo "warning: me: $(errors_of "$work/me.txt")" >&2
me_rps=$(rps_of "$work/me.txt")

# /me p99 at 8 connections, alone and during a login storm, in rounds.
idles=(); storms=(); storm_ratios=(); storm_logins=()
for round in $(seq 1 "$ROUNDS"); do
  echo "/me during a login storm: round $round of $ROUNDS" >&2
  wrk -t1 -c8 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/me" > "$work/me_idle.txt"
  i=$(p99_of "$work/me_idle.txt")
  wrk -t1 -c16 -d"$((DURATION + 2))s" -s bench/login.lua "$base/api/v1/auth/login" > "$work/storm.txt" 2>&1 &
  storm=$!
  sleep 1
  wrk -t1 -c8 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/me" > "$work/me_storm.txt"
  wait "$storm" || true
  st=$(p99_of "$work/me_storm.txt")
  idles+=("$i"); storms+=("$st"); storm_logins+=("$(rps_of "$work/storm.txt")")
  storm_ratios+=("$(awk -v s="$st" -v i="$i" 'BEGIN { print s / i }')")
done
me_idle_p99=$(median "${idles[@]}"); me_storm_p99=$(median "${storms[@]}")
storm_ratio=$(median "${storm_ratios[@]}"); storm_login=$(median "${storm_logins[@]}")

table=$(awk -v raw="$raw" -v rawall="$raw_all" -v slots="$slots" -v cores="$cores" -v login="$login" \
  -v me="$me_rps" -v idle="$me_idle_p99" -v storm="$me_storm_p99" -v stormlogin="$storm_login" \
  -v floor="$floor" -v fr="$floor_ratio" -v lf="$login_over_floor" \
  -v r="$login_ratio" -v s="$storm_ratio" 'BEGIN {
  printf "| measure | value (median) | ceiling / reference (median) | ratio (median of windows or rounds) | target | verdict |\n|---|---:|---:|---:|---|---|\n"
  printf "| logins/s (argon2id m=19MiB t=2, %d slot(s)) | %.1f | raw hash rate, %d thread(s): %.1f | %.3f | >= 0.95 | %s |\n", slots, login, slots, raw, r, (r >= 0.95 ? "meets" : "BELOW")
  printf "| bare server logins/s (hashes with the same pool and answers; no database, tokens or middleware) | %.1f | raw hash rate: %.1f | %.3f | (reference: the floor of this machine) | |\n", floor, raw, fr
  printf "| Sen logins/s against the bare server | %.1f | bare server: %.1f | %.3f | (reference) | |\n", login, floor, lf
  printf "| raw hash rate, every core | %.1f | (reference, %d threads) | | | |\n", rawall, cores
  printf "| GET /api/v1/me req/s (EdDSA verify + user read) | %.0f | NestJS HS256 ~4,500; PocketBase ~3,900 | | >= 11,000 | %s |\n", me, (me >= 11000 ? "meets" : "BELOW")
  printf "| GET /api/v1/me p99 idle (8 conns) | %.2f ms | | | | |\n", idle
  printf "| GET /api/v1/me p99 during a login storm (%.0f logins/s) | %.2f ms | idle p99 %.2f ms | %.2f | <= 2.0 | %s |\n", stormlogin, storm, idle, s, (s <= 2.0 ? "meets" : "ABOVE")
}')
echo
echo "$table"

# Readings written under the table by hand ("Reading (...)" paragraphs
# onwards) are kept; the rest of the section is replaced.
readings=$(awk '/^## Identity/ {in_id=1; next} /^## / {in_id=0} in_id && /^Reading \(/ {keep=1} in_id && keep' bench/RESULTS.md)
{
  # Everything but this section, without the blank lines that preceded it.
  awk '/^## Identity/ {skip=1; next} /^## / {skip=0} skip {next}
       /^$/ {blank++; next} {for (; blank > 0; blank--) print ""; print}
' bench/RESULTS.md
  echo
  echo "## Identity (bench/auth.sh)"
  echo
  echo "$(date -u +%Y-%m-%d), $cores cores, \`sen serve\` (release) on SQLite, rate limits off, wrk on the same cores."
  echo "Logins: $WINDOWS windows of ${WINDOW} s for Sen (L) and as many for a bare axum server that only hashes with Sen's pool and answers (F, \`auth-floor\`), each between two ceiling windows of the same length (R L R F R L R ... F R); a window's ratio is its logins (counted by the server, 200s only, over the middle of a running load) against the mean of the ceilings on either side, and the table shows medians. Sen against the bare server: each L window's ratio over the next F window's."
  echo "\`/me\`: ${DURATION} s per measurement, $ROUNDS rounds for the storm ratio, each pairing the storm with an idle measurement taken right before it."
  echo "Ceiling for logins: the raw argon2id hash rate of Sen's hasher (same parameters, memory reused) with as many threads as Sen's hashing threads (one per core, at SCHED_IDLE so other requests come first) and nothing else running."
  echo
  echo "$table"
  if [ -n "$readings" ]; then
    echo
    echo "$readings"
  fi
} > "$work/RESULTS.md"
mv "$work/RESULTS.md" bench/RESULTS.md
echo
echo "written to bench/RESULTS.md"
