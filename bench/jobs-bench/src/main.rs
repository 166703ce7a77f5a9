//! `jobs-bench DATABASE_URL N CONCURRENCY`: enqueues N no-op jobs in
//! batches (enqueue rate), drains them with Sen's worker runtime (drain
//! rate), drains more with one transaction per job (unbatched drain
//! rate: each job's completion claims the next one), measures
//! claim-to-start latency of single jobs at low load, and the database's own ceiling (single-row insert
//! transactions per second).
//! Prints one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use sen_core::jobs::{Job, JobContext, JobError, JobHandler, NewJob};
use sen_core::{App, AppContext, Apps, Config, Role};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize)]
struct Noop;

/// No-op jobs run so far (so the drain loop need not ask the database).
static RAN: AtomicUsize = AtomicUsize::new(0);

impl Job for Noop {
    const KIND: &'static str = "bench.noop";
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        RAN.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

static STARTED: OnceLock<mpsc::UnboundedSender<Instant>> = OnceLock::new();

#[derive(Serialize, Deserialize)]
struct Ping;

impl Job for Ping {
    const KIND: &'static str = "bench.ping";
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        if let Some(tx) = STARTED.get() {
            let _ = tx.send(Instant::now());
        }
        Ok(())
    }
}

struct Bench;

impl App for Bench {
    fn name(&self) -> &'static str {
        "bench"
    }
    fn title(&self) -> &'static str {
        "Bench"
    }
    fn description(&self) -> &'static str {
        "No-op jobs"
    }
    fn jobs(&self) -> Vec<JobHandler> {
        vec![JobHandler::of::<Noop>(), JobHandler::of::<Ping>()]
    }
}

async fn count(ctx: &AppContext, sql: &str) -> i64 {
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(sql, []))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Enqueues `n` no-op jobs in transactions of 1000.
async fn enqueue_noops(ctx: &AppContext, n: usize) -> anyhow::Result<()> {
    let db = ctx.db();
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        let jobs: Vec<NewJob> = (0..k).map(|_| NewJob::of(&Noop).unwrap()).collect();
        let tx = db.begin_write().await?;
        ctx.jobs().enqueue_many(&tx, jobs).await?;
        tx.commit().await?;
        left -= k;
    }
    Ok(())
}

/// Waits until `ran` no-op jobs have run in total and `completed` are
/// recorded as completed. Counting completed rows every few milliseconds
/// would itself load the database (a scan of every completed job each
/// time) and slow the very drain being measured: the in-process counter
/// is watched first, and the count polled only for the last completions.
async fn wait_drained(ctx: &AppContext, ran: usize, completed: usize) {
    while RAN.load(Ordering::Relaxed) < ran {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while (count(
        ctx,
        "SELECT COUNT(*) FROM sen_jobs WHERE state = 'completed' AND kind = 'bench.noop'",
    )
    .await as usize)
        < completed
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite://./bench.db".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let mut config = Config::default();
    config.database_url = sen_core::config::Secret::new(url.clone());
    config.worker_queues = vec![("default".into(), concurrency)];
    config.job_poll_ms = 20;
    config.db_max_connections = 16;
    let apps = Apps::new()
        .register(sen_core::system::SystemApp)?
        .register(Bench)?;
    let ctx = AppContext::connect(config, vec![Role::Worker], apps).await?;
    ctx.migrate().await?;

    // Ceiling: single-row insert transactions per second on this database.
    let db = ctx.db();
    db.orm()
        .execute_unprepared(
            "CREATE TABLE IF NOT EXISTS bench_ceiling (id TEXT PRIMARY KEY, v BIGINT)",
        )
        .await?;
    let ceiling_n = 3_000;
    let t = Instant::now();
    for i in 0..ceiling_n {
        let tx = db.begin_write().await?;
        tx.execute_raw(db.statement(
            "INSERT INTO bench_ceiling (id, v) VALUES (?, ?)",
            [format!("{}-{i}", url.len()).into(), (i as i64).into()],
        ))
        .await?;
        tx.commit().await?;
    }
    let insert_tps = ceiling_n as f64 / t.elapsed().as_secs_f64();
    db.orm()
        .execute_unprepared("DELETE FROM bench_ceiling")
        .await?;

    // Enqueue in batches of 1000 per transaction.
    let t = Instant::now();
    enqueue_noops(&ctx, n).await?;
    let enqueue_rate = n as f64 / t.elapsed().as_secs_f64();

    // Drain with the real worker runtime.
    let t = Instant::now();
    let worker = sen_jobs::start(ctx.clone(), sen_jobs::WorkerConfig::from_context(&ctx))?;
    wait_drained(&ctx, n, n).await;
    let drain_rate = n as f64 / t.elapsed().as_secs_f64();

    // Claim-to-start latency at low load: one job at a time.
    let (tx_started, mut rx_started) = mpsc::unbounded_channel();
    let _ = STARTED.set(tx_started);
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let tx = db.begin_write().await?;
        ctx.jobs().enqueue(&tx, NewJob::of(&Ping)?).await?;
        tx.commit().await?;
        let committed = Instant::now();
        if let Ok(Some(started)) =
            tokio::time::timeout(Duration::from_secs(5), rx_started.recv()).await
        {
            latencies.push(started.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.stop().await;

    // Unbatched drain: one transaction per job. A claim takes one job, and
    // each job's completion claims the next one in the same statement.
    let single_n = (n / 5).clamp(1, 20_000);
    enqueue_noops(&ctx, single_n).await?;
    let before = RAN.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut single = sen_jobs::WorkerConfig::from_context(&ctx);
    single.batch = 1;
    single.complete_batch = 1;
    // Several claims in flight: one loop would wait a round trip per job.
    single.claimers = 16;
    let worker = sen_jobs::start(ctx.clone(), single)?;
    wait_drained(&ctx, before + single_n, n + single_n).await;
    let single_rate = single_n as f64 / t.elapsed().as_secs_f64();
    worker.stop().await;

    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    println!(
        "{}",
        serde_json::json!({
            "backend": ctx.db().backend().as_str(),
            "jobs": n,
            "concurrency": concurrency,
            "insert_tx_per_s": insert_tps.round(),
            "enqueue_per_s": enqueue_rate.round(),
            "drain_per_s": drain_rate.round(),
            "drain_unbatched_per_s": single_rate.round(),
            "start_latency_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
            "start_latency_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
