//! The worker runtime: per queue, claim batches up to the free concurrency,
//! run each job in its own task (so a panic is an error, not a crash) under
//! its time limit, then complete or fail it, fenced by the lock token. A
//! heartbeat extends the leases of running jobs; a rescuer returns jobs
//! whose lease expired. Wake-ups come from local enqueues, PostgreSQL
//! NOTIFY, or a poll interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rand::Rng as _;
use sea_orm::ConnectionTrait as _;
use sen_core::jobs::{JobContext, JobHandler};
use sen_core::{AppContext, Backend};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::queue::{self, ClaimedJob, FailOutcome};

/// How the worker role runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues with their concurrency.
    pub queues: Vec<(String, usize)>,
    /// Lease taken at claim and renewed by the heartbeat.
    pub lease: Duration,
    /// Longest wait between claims when no wake-up arrives.
    pub poll: Duration,
    /// Most jobs claimed in one statement.
    pub batch: u32,
    /// Most completions written by one statement (1: each job writes its
    /// own completion, in its own statement and transaction).
    pub complete_batch: usize,
    /// Claim loops per queue, each with an equal share of its concurrency.
    /// One is enough when claims are batched; with small claims (`batch`
    /// of 1) each loop waits a database round trip per job, and several
    /// loops keep several claims in flight (`SKIP LOCKED` keeps them off
    /// each other's rows, as it does for separate worker processes).
    pub claimers: usize,
    /// How long running jobs get to finish at shutdown before release.
    pub grace: Duration,
    /// PostgreSQL: vacuum the job table once this worker has claimed this
    /// many jobs since its last vacuum (0: never; see `job_vacuum_after`).
    pub vacuum_after: u64,
}

impl WorkerConfig {
    /// The configuration from `ctx`'s config.
    pub fn from_context(ctx: &AppContext) -> Self {
        let c = ctx.config();
        Self {
            queues: c.worker_queues.clone(),
            lease: Duration::from_millis(c.job_lease_ms),
            poll: Duration::from_millis(c.job_poll_ms),
            batch: 256,
            complete_batch: COMPLETION_BATCH,
            claimers: 1,
            grace: c.shutdown_grace(),
            vacuum_after: c.job_vacuum_after,
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Two apps declare the same job kind.
    #[error("job kind `{0}` is declared twice")]
    DuplicateKind(String),
}

/// The kinds this process can run.
pub fn handlers(ctx: &AppContext) -> Result<HashMap<&'static str, JobHandler>, WorkerError> {
    let mut map = HashMap::new();
    let delivery = JobHandler::of::<crate::outbox::EventDelivery>();
    map.insert(delivery.kind(), delivery);
    for app in ctx.apps().iter() {
        for h in app.jobs() {
            if map.insert(h.kind(), h.clone()).is_some() {
                return Err(WorkerError::DuplicateKind(h.kind().to_string()));
            }
        }
    }
    Ok(map)
}

struct Shared {
    ctx: AppContext,
    handlers: HashMap<&'static str, JobHandler>,
    config: WorkerConfig,
    /// Lock tokens with running jobs, and how many run under each.
    tokens: Mutex<HashMap<String, usize>>,
    wake: Arc<Notify>,
    /// Completions go through one task that batches them into one UPDATE.
    completions: mpsc::Sender<Completion>,
    /// Metric handles registered once per kind and queue: the macros
    /// build and hash their label set on every call, three times per job.
    kind_metrics: HashMap<&'static str, KindMetrics>,
    queue_wait: HashMap<String, metrics::Histogram>,
    /// Jobs this worker claimed (each left a dead claim-index entry).
    claimed: AtomicU64,
}

/// The per-job metrics of one kind.
struct KindMetrics {
    completed: metrics::Counter,
    run_time: metrics::Histogram,
}

/// A finished job waiting for its completion to be recorded.
struct Completion {
    id: String,
    token: String,
    recorded: oneshot::Sender<Result<bool, String>>,
}

/// Most completions written by one statement.
const COMPLETION_BATCH: usize = 256;

/// Records completions: takes whatever has queued up (never waits to fill
/// a batch, so a lone job completes at once) and writes it in one UPDATE.
async fn complete_in_batches(ctx: AppContext, mut rx: mpsc::Receiver<Completion>, most: usize) {
    let most = most.max(1);
    let mut batch = Vec::with_capacity(most);
    while rx.recv_many(&mut batch, most).await > 0 {
        let pairs: Vec<(String, String)> = batch
            .iter()
            .map(|c| (c.id.clone(), c.token.clone()))
            .collect();
        match queue::complete_many(ctx.db(), &pairs).await {
            Ok(done) => {
                let done: std::collections::HashSet<String> = done.into_iter().collect();
                for c in batch.drain(..) {
                    let held = done.contains(&c.id);
                    let _ = c.recorded.send(Ok(held));
                }
            }
            Err(e) => {
                for c in batch.drain(..) {
                    let _ = c.recorded.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// A running worker role; `stop` shuts it down gracefully.
pub struct RunningWorker {
    /// Tells the queue loops to stop claiming.
    stop_claiming: watch::Sender<bool>,
    /// Tells the heartbeat, rescuer and listeners to stop, once the queue
    /// loops have drained (leases stay alive while jobs finish).
    stop_background: watch::Sender<bool>,
    queues: JoinSet<()>,
    background: JoinSet<()>,
}

/// Starts the worker role for `ctx` (jobs of every registered app).
pub fn start(ctx: AppContext, config: WorkerConfig) -> Result<RunningWorker, WorkerError> {
    let handlers = handlers(&ctx)?;
    let kind_metrics = handlers
        .keys()
        .map(|kind| {
            let m = KindMetrics {
                completed: metrics::counter!("jobs_completed_total", "kind" => *kind),
                run_time: metrics::histogram!("job_run_duration_seconds", "kind" => *kind),
            };
            (*kind, m)
        })
        .collect();
    let queue_wait = config
        .queues
        .iter()
        .map(|(q, _)| {
            let h = metrics::histogram!("job_queue_wait_seconds", "queue" => q.clone());
            (q.clone(), h)
        })
        .collect();
    let wake = Arc::new(Notify::new());
    let (completions, completion_rx) = mpsc::channel(COMPLETION_BATCH * 4);
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        handlers,
        config: config.clone(),
        tokens: Mutex::default(),
        wake,
        completions,
        kind_metrics,
        queue_wait,
        claimed: AtomicU64::new(0),
    });
    // Ends when every sender (the shared state) is gone, after the queues drained.
    tokio::spawn(complete_in_batches(
        ctx.clone(),
        completion_rx,
        config.complete_batch,
    ));
    let (stop_claiming, claiming_stopped) = watch::channel(false);
    let (stop_background, stopped) = watch::channel(false);
    let mut queues = JoinSet::new();
    for (queue, concurrency) in &config.queues {
        for share in shares((*concurrency).max(1), config.claimers) {
            queues.spawn(run_queue(
                shared.clone(),
                queue.clone(),
                share,
                claiming_stopped.clone(),
            ));
        }
    }
    let mut background = JoinSet::new();
    background.spawn(heartbeat(shared.clone(), stopped.clone()));
    background.spawn(rescuer(shared.clone(), stopped.clone()));
    background.spawn(report_depths(shared.clone(), stopped.clone()));
    background.spawn(forward_local_wakeups(shared.clone(), stopped.clone()));
    background.spawn(crate::outbox::run(
        ctx.clone(),
        config.poll,
        stopped.clone(),
    ));
    if ctx.db().backend() == Backend::Postgres {
        background.spawn(listen(shared.clone(), stopped.clone()));
        if config.vacuum_after > 0 {
            background.spawn(vacuum_churned(shared.clone(), stopped.clone()));
        }
    }
    tracing::info!(queues = ?config.queues, kinds = shared.handlers.len(), "worker role started");
    Ok(RunningWorker {
        stop_claiming,
        stop_background,
        queues,
        background,
    })
}

impl RunningWorker {
    /// Stops claiming, lets running jobs finish within the grace period,
    /// releases the rest, and returns.
    pub async fn stop(mut self) {
        let _ = self.stop_claiming.send(true);
        while self.queues.join_next().await.is_some() {}
        let _ = self.stop_background.send(true);
        while self.background.join_next().await.is_some() {}
    }
}

async fn forward_local_wakeups(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shared.ctx.jobs().wake_signal().notified() => shared.wake.notify_waiters(),
            _ = stopped.changed() => return,
        }
    }
}

async fn listen(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let sen_core::db::Pool::Postgres(pool) = shared.ctx.db().pool() else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen("sen_jobs").await?;
            loop {
                listener.recv().await?;
                shared.wake.notify_waiters();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            r = attempt => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "job LISTEN connection lost; polling until it is back");
                }
            }
            _ = stopped.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// `concurrency` split into at most `loops` shares of at least one each.
fn shares(concurrency: usize, loops: usize) -> Vec<usize> {
    let loops = loops.clamp(1, concurrency.max(1));
    (0..loops)
        .map(|i| concurrency / loops + usize::from(i < concurrency % loops))
        .collect()
}

async fn run_queue(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    mut stopped: watch::Receiver<bool>,
) {
    // `slots`: handlers running at once (the queue's concurrency). A job
    // gives its slot back as soon as its handler returns, so the next
    // claim overlaps the write that records the outcome; `claimed` bounds
    // the jobs held by this queue (running or being recorded) to twice
    // the concurrency, so a slow database cannot pile up claimed jobs.
    let slots = Arc::new(Semaphore::new(concurrency));
    let claimed = Arc::new(Semaphore::new(concurrency.saturating_mul(2)));
    let mut running = JoinSet::new();
    let mut db_backoff = Duration::from_millis(50);
    while !*stopped.borrow() {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits().min(claimed.available_permits());
        if free == 0 {
            // Only this loop takes permits, so once one of each is free
            // the next round sees them.
            let both = async {
                drop(slots.acquire().await);
                drop(claimed.acquire().await);
            };
            tokio::select! {
                _ = both => {}
                _ = stopped.changed() => break,
            }
            continue;
        }
        let limit = u32::try_from(free)
            .unwrap_or(u32::MAX)
            .min(shared.config.batch);
        let notified = shared.wake.notified();
        match queue::claim(shared.ctx.db(), &queue, limit, shared.config.lease).await {
            Ok(jobs) if jobs.is_empty() => {
                db_backoff = Duration::from_millis(50);
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(shared.config.poll) => {}
                    _ = stopped.changed() => break,
                }
            }
            Ok(jobs) => {
                db_backoff = Duration::from_millis(50);
                metrics::counter!("jobs_claimed_total", "queue" => queue.clone())
                    .increment(jobs.len() as u64);
                shared
                    .claimed
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                if let Some(first) = jobs.first() {
                    *shared
                        .tokens
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(first.lock_token.clone())
                        .or_default() += jobs.len();
                }
                for job in jobs {
                    let (Ok(slot), Ok(held)) = (
                        slots.clone().acquire_owned().await,
                        claimed.clone().acquire_owned().await,
                    ) else {
                        break;
                    };
                    let shared = shared.clone();
                    let chain = Chain {
                        slots: slots.clone(),
                        stopped: stopped.clone(),
                    };
                    running.spawn(async move {
                        let mut next = Some((job, slot));
                        while let Some((job, slot)) = next {
                            next = execute(&shared, job, slot, &chain).await;
                        }
                        drop(held);
                    });
                }
            }
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, "claiming jobs failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(db_backoff) => {}
                    _ = stopped.changed() => break,
                }
                db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Shutdown: let running jobs finish within the grace period, then
    // release what is left so another worker picks it up at once.
    let deadline = tokio::time::sleep(shared.config.grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = running.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                running.abort_all();
                let tokens: Vec<String> = shared.tokens.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
                for token in tokens {
                    match queue::release(shared.ctx.db(), &token).await {
                        Ok(n) if n > 0 => tracing::warn!(released = n, "released jobs still running at shutdown"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not release jobs at shutdown; the rescuer will"),
                    }
                }
                break;
            }
        }
    }
}

/// What a job's task needs to take the next job itself when completions
/// are unbatched (see `execute`).
struct Chain {
    /// The queue's handler slots.
    slots: Arc<Semaphore>,
    /// Set when the worker stops claiming.
    stopped: watch::Receiver<bool>,
}

/// Runs one claimed job to its recorded outcome; `slot` is given back
/// when the handler returns, before the outcome is written.
///
/// With unbatched completions (`complete_batch` 1), a job that succeeded
/// completes and claims the next job of its queue in one transaction when
/// a handler slot is free, and returns that job (with the slot) for this
/// task to run next: one transaction per job instead of two.
async fn execute(
    shared: &Shared,
    job: ClaimedJob,
    slot: OwnedSemaphorePermit,
    chain: &Chain,
) -> Option<(ClaimedJob, OwnedSemaphorePermit)> {
    let started = Instant::now();
    let waited_us = sen_core::jobs::micros(chrono::Utc::now()) - job.run_at;
    let waited = waited_us.max(0) as f64 / 1e6;
    match shared.queue_wait.get(&job.queue) {
        Some(h) => h.record(waited),
        None => metrics::histogram!("job_queue_wait_seconds", "queue" => job.queue.clone())
            .record(waited),
    }
    let db = shared.ctx.db();
    let Some(handler) = shared.handlers.get(job.kind.as_str()) else {
        let msg = format!("no handler for job kind `{}` in this worker", job.kind);
        record_failure(shared, &job, &msg, true, Duration::from_secs(30)).await;
        finish_token(shared, &job);
        return None;
    };
    let jctx = JobContext {
        app: shared.ctx.clone(),
        id: job.id.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        kind: job.kind.clone(),
    };
    let timeout = Duration::from_millis(u64::try_from(job.timeout_ms).unwrap_or(0));
    let run = handler.run(jctx, &job.args);
    // A panic becomes an error here, never a dead worker.
    let outcome = std::panic::AssertUnwindSafe(tokio::time::timeout(timeout, run))
        .catch_unwind()
        .await;
    drop(slot);
    let backoff = handler
        .options()
        .backoff
        .delay(job.attempt, rand::rng().random::<f64>());
    let mut next = None;
    match outcome {
        Ok(Ok(Ok(()))) => {
            let result = if shared.config.complete_batch <= 1 {
                // Unbatched: each job writes its own completion, so
                // completions run side by side instead of in one line,
                // and takes the next job in the same transaction when
                // this queue has a free slot for it.
                let stopping = *chain.stopped.borrow();
                let free = (!stopping)
                    .then(|| chain.slots.clone().try_acquire_owned().ok())
                    .flatten();
                let result = match free {
                    Some(free) => queue::complete_and_claim(db, &job, shared.config.lease)
                        .await
                        .map(|(held, claimed)| {
                            if let Some(claimed) = claimed {
                                metrics::counter!("jobs_claimed_total", "queue" => job.queue.clone())
                                    .increment(1);
                                shared.claimed.fetch_add(1, Ordering::Relaxed);
                                next = Some((claimed, free));
                            }
                            held
                        }),
                    None => queue::complete(db, &job).await,
                };
                result.map_err(|e| e.to_string())
            } else {
                let (recorded, result) = oneshot::channel();
                let completion = Completion {
                    id: job.id.clone(),
                    token: job.lock_token.clone(),
                    recorded,
                };
                match shared.completions.send(completion).await {
                    Ok(()) => result
                        .await
                        .unwrap_or_else(|_| Err("completion writer stopped".into())),
                    Err(_) => queue::complete(db, &job).await.map_err(|e| e.to_string()),
                }
            };
            match result {
                Ok(true) => {
                    if let Some(m) = shared.kind_metrics.get(job.kind.as_str()) {
                        m.completed.increment(1);
                    }
                    shared
                        .ctx
                        .activity()
                        .record(sen_core::activity::Kind::JobDone);
                }
                Ok(false) => {
                    tracing::warn!(job = %job.id, "completion rejected: the lease was lost or the job cancelled")
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "could not record completion; the rescuer will rerun it")
                }
            }
        }
        Ok(Ok(Err(e))) => match e.snoozed_for() {
            Some(delay) => match queue::snooze(db, &job, delay).await {
                Ok(true) => {
                    tracing::debug!(job = %job.id, delay_ms = delay.as_millis() as u64, why = e.message(), "job snoozed")
                }
                Ok(false) => {
                    tracing::warn!(job = %job.id, "snooze not recorded: the lease was lost")
                }
                Err(err) => {
                    tracing::warn!(job = %job.id, error = %err, "could not snooze; the rescuer will rerun it")
                }
            },
            None => record_failure(shared, &job, e.message(), e.is_retryable(), backoff).await,
        },
        Ok(Err(_)) => {
            record_failure(
                shared,
                &job,
                &format!("timed out after {} ms", job.timeout_ms),
                true,
                backoff,
            )
            .await
        }
        Err(payload) => {
            let msg = format!(
                "panicked: {}",
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            );
            record_failure(shared, &job, &msg, true, backoff).await;
        }
    }
    if let Some(m) = shared.kind_metrics.get(job.kind.as_str()) {
        m.run_time.record(started.elapsed().as_secs_f64());
    }
    // The next job runs under this job's token: the count stays.
    if next.is_none() {
        finish_token(shared, &job);
    }
    next
}

/// Counts `job` out of its lock token's running jobs.
fn finish_token(shared: &Shared, job: &ClaimedJob) {
    let mut tokens = shared.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = tokens.get_mut(&job.lock_token) {
        *n -= 1;
        if *n == 0 {
            tokens.remove(&job.lock_token);
        }
    }
}

async fn record_failure(
    shared: &Shared,
    job: &ClaimedJob,
    error: &str,
    retry: bool,
    backoff: Duration,
) {
    match queue::fail(shared.ctx.db(), job, error, retry, backoff).await {
        Ok(FailOutcome::Dead) => {
            shared
                .ctx
                .activity()
                .record(sen_core::activity::Kind::JobFailed);
            metrics::counter!("jobs_dead_total", "kind" => job.kind.clone()).increment(1);
            tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempt, error, "job is dead");
            crate::admin::announce(
                &shared.ctx,
                "job.dead",
                serde_json::json!({ "id": job.id, "kind": job.kind, "queue": job.queue, "error": error }),
            )
            .await;
        }
        Ok(FailOutcome::Retrying) => {
            shared
                .ctx
                .activity()
                .record(sen_core::activity::Kind::JobFailed);
            metrics::counter!("jobs_failed_total", "kind" => job.kind.clone()).increment(1);
            tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempt, error, "job failed; will retry");
        }
        Ok(FailOutcome::Stale) => {
            tracing::warn!(job = %job.id, "failure not recorded: the lease was lost")
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "could not record failure; the rescuer will rerun it")
        }
    }
}

async fn heartbeat(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let every = shared.config.lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        let tokens: Vec<String> = shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if let Err(e) = queue::extend_leases(shared.ctx.db(), &tokens, shared.config.lease).await {
            tracing::warn!(error = %e, "could not extend job leases");
        }
    }
}

async fn rescuer(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        let jitter = rand::rng().random_range(0.5..1.0);
        tokio::select! {
            _ = tokio::time::sleep(shared.config.lease.mul_f64(jitter / 2.0)) => {}
            _ = stopped.changed() => return,
        }
        match queue::rescue_expired(shared.ctx.db(), 100).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("jobs_rescued_total").increment(n);
                tracing::warn!(
                    rescued = n,
                    "returned jobs with expired leases to the queue"
                );
                shared.wake.notify_waiters();
            }
            Err(e) => tracing::warn!(error = %e, "rescuing expired jobs failed"),
        }
    }
}

/// Vacuums the job table (PostgreSQL) once this worker has claimed
/// `vacuum_after` jobs since the last time. A claim walks the claim index
/// from its front, where every job claimed since the last vacuum left an
/// entry for its old row version: after 100k jobs an empty queue's claim
/// read 1,250 index pages (5 ms) instead of one. Autovacuum runs a minute
/// apart at best and skips index cleanup when few heap pages changed, so
/// the worker vacuums itself, with index cleanup on.
///
/// A vacuum reads every index of the table whole, so its cost grows with
/// the jobs kept (completed ones until retention prunes them): after one
/// that took `d`, the next waits at least `VACUUM_SPACING × d`, keeping
/// vacuuming to a tenth of one database backend whatever the table size.
/// `PARALLEL 0`: one backend, not a burst of workers on every core.
/// `SKIP_LOCKED`: when another worker (or autovacuum) is already at it,
/// this one skips a turn instead of queueing behind it.
async fn vacuum_churned(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    const CHECK: Duration = Duration::from_millis(250);
    const VACUUM_SPACING: u32 = 9;
    // The first round vacuums at once: jobs run before this worker started
    // may have left their entries (cheap when they did not).
    let mut last = None;
    let mut not_before = Instant::now();
    loop {
        let now = shared.claimed.load(Ordering::Relaxed);
        let churned = last.is_none_or(|last| now - last >= shared.config.vacuum_after);
        if !churned || Instant::now() < not_before {
            tokio::select! {
                _ = tokio::time::sleep(CHECK) => {}
                _ = stopped.changed() => return,
            }
            continue;
        }
        last = Some(now);
        let started = Instant::now();
        let vacuum = shared
            .ctx
            .db()
            .orm()
            .execute_unprepared("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, PARALLEL 0) sen_jobs");
        let done = tokio::select! {
            done = vacuum => done,
            _ = stopped.changed() => return,
        };
        let took = started.elapsed();
        not_before = Instant::now() + took * VACUUM_SPACING;
        match done {
            Ok(_) => {
                metrics::counter!("jobs_vacuums_total").increment(1);
                tracing::debug!(ms = took.as_millis() as u64, "vacuumed the job table");
            }
            Err(e) => {
                // Most likely not the table's owner: autovacuum remains.
                tracing::warn!(error = %e, "could not vacuum the job table; leaving it to autovacuum");
                return;
            }
        }
    }
}

/// Publishes `jobs{queue,state}` gauges and the oldest ready job's age
/// every few seconds, for `/metrics` and the dashboard.
async fn report_depths(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        match queue::stats(shared.ctx.db()).await {
            Ok(stats) => {
                for q in stats {
                    for (state, n) in &q.states {
                        metrics::gauge!("jobs", "queue" => q.queue.clone(), "state" => state.clone()).set(*n as f64);
                    }
                    let age = q.oldest_ready_ms.unwrap_or(0) as f64 / 1000.0;
                    metrics::gauge!("jobs_oldest_ready_seconds", "queue" => q.queue.clone())
                        .set(age);
                }
            }
            Err(e) => tracing::debug!(error = %e, "queue statistics unavailable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_loops_share_the_concurrency_exactly() {
        assert_eq!(shares(10, 1), vec![10]);
        assert_eq!(shares(10, 2), vec![5, 5]);
        assert_eq!(shares(7, 2), vec![4, 3]);
        assert_eq!(shares(3, 8), vec![1, 1, 1]);
        assert_eq!(shares(4, 0), vec![4]);
        for n in 1..300 {
            for k in 1..10 {
                let s = shares(n, k);
                assert_eq!(s.iter().sum::<usize>(), n);
                assert!(s.iter().all(|x| *x >= 1));
            }
        }
    }
}
