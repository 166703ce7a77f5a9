#!/usr/bin/env bash
# Files benchmark on 127.0.0.1, bounded in count and time:
#   1. streamed upload throughput of a 10 MB file through
#      POST /api/v1/files (release `sen serve`, SQLite, local storage)
#      against a disk copy of the same file (the ceiling), and the server's
#      peak RSS after 10 MB and after 100 MB uploads (it must not grow with
#      the file's size);
#   2. thumbnail jobs per second for 1 MP JPEGs (two sizes each) by
#      `sen worker --normal`, against Sen's own renderer run in a loop on
#      every core (the ceiling).
# Prints a table and updates the "Files" section of bench/RESULTS.md.
#
#   bench/files.sh            # 10 uploads of 10 MB, 40 thumbnail jobs
#   N10=5 NJPEG=20 bench/files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need.sh
need curl python3

N10=${N10:-10}
NJPEG=${NJPEG:-40}
cargo build --release --locked -q -p sen -p files-bench

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
now() { date +%s.%N; }
kb() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$2/status"; }

head -c $((10 * 1000 * 1000)) /dev/urandom > "$work/10mb.bin"
head -c $((100 * 1000 * 1000)) /dev/urandom > "$work/100mb.bin"
target/release/files-bench jpeg "$work/1mp.jpg"

# Ceiling 1: copying the file on the same disk.
t0=$(now)
for i in $(seq 1 "$N10"); do cp "$work/10mb.bin" "$work/copy.bin"; sync "$work/copy.bin"; done
t1=$(now)
copy_mbs=$(awk -v n="$N10" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n * 10 / (b - a) }')
rm -f "$work/copy.bin"

port=$(free_port)
export SEN_DATABASE_URL="sqlite://$work/sen.db" SEN_PORT=$port RUST_LOG=warn SEN_DATA_DIR="$work/data"
export SEN_SECRET_KEY="bench-secret-key-$(date +%s%N)-0123456789abcdef" SEN_AUTH_RATE_LIMITS=false
export SEN_FILES_MAX_BYTES=$((200 * 1000 * 1000)) SEN_REQUEST_TIMEOUT_MS=120000
target/release/sen migrate >/dev/null
echo "a long pass phrase" | target/release/sen admin create --email bench@example.com >/dev/null 2>&1
target/release/sen serve 2>"$work/serve.log" & serve=$!; pids+=($serve)
wait_port "$port"
base="http://127.0.0.1:$port"
token=$(curl -s -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"a long pass phrase"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
up() { # file purpose -> status
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -F "file=@$1" "$base/api/v1/files?purpose=$2"
}
[ "$(up "$work/1mp.jpg" attachment)" = 201 ] || { echo "warm-up upload failed" >&2; exit 1; }
rss_idle=$(kb VmRSS "$serve")

t0=$(now)
for i in $(seq 1 "$N10"); do
  s=$(up "$work/10mb.bin" attachment); [ "$s" = 201 ] || { echo "upload answered $s" >&2; exit 1; }
done
t1=$(now)
up_mbs=$(awk -v n="$N10" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n * 10 / (b - a) }')
hwm10=$(kb VmHWM "$serve")
t0=$(now)
for i in 1 2; do
  s=$(up "$work/100mb.bin" attachment); [ "$s" = 201 ] || { echo "upload answered $s" >&2; exit 1; }
done
t1=$(now)
up100_mbs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 200 / (b - a) }')
hwm100=$(kb VmHWM "$serve")

# Thumbnails: queue NJPEG jobs with no worker running, then time a worker.
for i in $(seq 1 "$NJPEG"); do
  s=$(up "$work/1mp.jpg" image); [ "$s" = 201 ] || { echo "image upload answered $s" >&2; exit 1; }
done
count_done() {
  curl -s -H "Authorization: Bearer $token" "$base/api/v1/files?purpose=image&limit=200" |
    python3 -c 'import json,sys; print(sum(1 for f in json.load(sys.stdin)["items"] if len(f["thumbnails"]) == 2))'
}
SEN_WORKER_QUEUES=default=10 target/release/sen worker --normal 2>"$work/worker.log" & worker=$!; pids+=($worker)
t0=$(now)
deadline=$(( $(date +%s) + 300 ))
while [ "$(count_done)" -lt "$NJPEG" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "thumbnails did not finish in 300 s" >&2; exit 1; }
  sleep 0.1
done
t1=$(now)
thumbs=$(awk -v n="$NJPEG" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
cores=$(nproc)
ceiling=$(target/release/files-bench ceiling "$work/1mp.jpg" "$cores" 8)

table=$(awk -v up="$up_mbs" -v copy="$copy_mbs" -v up100="$up100_mbs" -v idle="$rss_idle" -v h10="$hwm10" \
  -v h100="$hwm100" -v th="$thumbs" -v ceil="$ceiling" -v cores="$cores" -v n10="$N10" -v nj="$NJPEG" 'BEGIN {
  printf "| measure | value | ceiling / reference | ratio | target | verdict |\n|---|---:|---:|---:|---|---|\n"
  printf "| upload 10 MB, MB/s (%d sequential, streamed to local storage with SHA-256) | %.1f | disk copy of the same file: %.1f | %.2f | | |\n", n10, up, copy, up / copy
  printf "| upload 100 MB, MB/s (2 sequential) | %.1f | | | | |\n", up100
  printf "| server peak RSS after 10 MB uploads | %.1f MB | idle %.1f MB | | | |\n", h10 / 1024, idle / 1024
  printf "| server peak RSS after 100 MB uploads | %.1f MB | after 10 MB: %.1f MB | %.2f | does not grow with file size (<= 1.25) | %s |\n", h100 / 1024, h10 / 1024, h100 / h10, (h100 / h10 <= 1.25 ? "meets" : "GROWS")
  printf "| thumbnail jobs/s (1 MP JPEG, 128 + 512 px, %d jobs) | %.1f | renderer alone, %d thread(s): %.1f/s | %.2f | | |\n", nj, th, cores, ceil, th / ceil
}')
echo "$table"

stamp="$(date -u +%F), $(nproc) cores, \`sen serve\` and \`sen worker --normal\` (release, SQLite, local storage) with curl on the same cores."
section="## Files (bench/files.sh)

$stamp
Uploads are multipart through the full middleware stack; the server hashes while it streams. Thumbnail jobs are queued first, then one worker is started and timed until every file has both thumbnails.

$table
"
python3 - "$section" <<'PY'
import re, sys
path = "bench/RESULTS.md"
section = sys.argv[1]
text = open(path).read()
pattern = re.compile(r"## Files \(bench/files\.sh\).*?(?=\n## |\Z)", re.S)
text = pattern.sub(section.rstrip() + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
