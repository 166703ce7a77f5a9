#!/usr/bin/env bash
# Job queue benchmark: enqueue, drain and claim-to-start latency of no-op
# jobs through Sen's real worker runtime, on SQLite and on a throwaway
# PostgreSQL, next to each database's single-row insert transaction rate
# measured in the same run. Bounded by N jobs per backend. Writes its
# section of bench/RESULTS.md.
#
#   bench/jobs.sh              # 100000 jobs, concurrency 256
#   N=50000 CONCURRENCY=128 bench/jobs.sh
#
# N is large enough that the batched drain lasts seconds: at 30000 jobs it
# lasted under one, and the worker's start (its first vacuum, the first
# claims) weighed on the rate as much as the drain itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/need.sh
need postgres psql redis-server python3

N=${N:-100000}
CONCURRENCY=${CONCURRENCY:-256}

cargo build --release --locked -q -p jobs-bench
cargo build --locked -q -p sen-testkit --bin sen-test-services

work=$(mktemp -d)
svc=""
cleanup() { [ -n "$svc" ] && kill "$svc" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

target/debug/sen-test-services "$work/env" & svc=$!
for _ in $(seq 1 600); do [ -f "$work/env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/env"
psql "$SEN_TEST_DATABASE_URL" -qc "CREATE DATABASE jobs_bench" >/dev/null
pg_url="${SEN_TEST_DATABASE_URL%/postgres}/jobs_bench"

sqlite=$(target/release/jobs-bench "sqlite://$work/bench.db" "$N" "$CONCURRENCY" 2>/dev/null | tail -1)
postgres=$(target/release/jobs-bench "$pg_url" "$N" "$CONCURRENCY" 2>/dev/null | tail -1)

table=$(python3 - "$sqlite" "$postgres" <<'PY'
import json, sys
targets = {"sqlite": {"drain_per_s": 10000},
           "postgres": {"drain_per_s": 36000, "drain_unbatched_per_s": 5000, "enqueue_per_s": 50000}}
rows = ["| backend | enqueue jobs/s | drain jobs/s | unbatched drain jobs/s | claim-to-start p50 / p99 ms | ceiling: insert tx/s | drain / ceiling | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---|"]
for raw in sys.argv[1:]:
    r = json.loads(raw)
    t = targets[r["backend"]]
    verdicts = []
    for k, v in t.items():
        name = k.removesuffix("_per_s").replace("_", " ")
        verdicts.append(f"{name} {'meets' if r[k] >= v else 'BELOW'} {v}")
    verdicts.append(f"p50 {'meets' if r['start_latency_p50_ms'] <= 5 else 'BELOW'} 5 ms")
    rows.append(f"| {r['backend']} | {r['enqueue_per_s']:.0f} | {r['drain_per_s']:.0f} | {r['drain_unbatched_per_s']:.0f} | {r['start_latency_p50_ms']} / {r['start_latency_p99_ms']} | "
                f"{r['insert_tx_per_s']:.0f} | {r['drain_per_s']/r['insert_tx_per_s']:.1f}x | {', '.join(verdicts)} |")
print("\n".join(rows))
PY
)
echo "$table"

section="## Jobs (bench/jobs.sh)

$(date -u +%Y-%m-%d), $(nproc) cores; $N no-op jobs per backend, worker concurrency $CONCURRENCY, claims in batches, completions batched; enqueue in transactions of 1000 jobs. Unbatched drain: N/5 more jobs (at most 20000), one transaction per job: no claim or completion batching; each job's completion claims the next job in the same statement (a claim takes one job when no completion carries it). The bench process and the database share the cores. The throwaway PostgreSQL runs with fsync off (as the test kit starts it), so its ceiling is optimistic. Ceiling: single-row INSERT transactions per second on the same database in the same run.

$table"

python3 - "$section" <<'PY'
import os, re, sys
path = "bench/RESULTS.md"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
section = sys.argv[1].rstrip() + "\n"
pattern = re.compile(r"^## Jobs \(bench/jobs\.sh\)\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open(path, "w").write(text)
PY
echo "written to bench/RESULTS.md"
