//! The scheduler role: turns each app's cron schedules into jobs. Every
//! tick T of schedule S is enqueued with the once key `cron:{S}:{T}`, so any
//! number of schedulers (on any hosts, with skewed clocks) fire each tick
//! exactly once; the last tick fired is kept in `sen_cron_state` so a
//! schedule that catches up knows what it missed.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use sea_orm::{ConnectionTrait, DbErr};
use sen_core::jobs::{Missed, Overlap, Schedule, micros};
use sen_core::{AppContext, Backend};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest sleep between checks, so a clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Most ticks considered per schedule and pass (guards against `* * * * * *` after a long outage).
const MAX_TICKS: usize = 10_000;

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A cron expression does not parse.
    #[error("schedule `{0}`: invalid cron expression {1:?}: {2}")]
    BadCron(String, String, String),
    /// A time zone is unknown.
    #[error("schedule `{0}`: unknown time zone {1:?}")]
    BadTimeZone(String, String),
    /// Two schedules share a name.
    #[error("schedule `{0}` is declared twice")]
    Duplicate(String),
}

struct Entry {
    schedule: Schedule,
    cron: Cron,
    tz: chrono_tz::Tz,
    /// The latest tick already handled.
    last: DateTime<Utc>,
}

impl Entry {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// Parses and validates every app's schedules.
pub fn schedules(ctx: &AppContext) -> Result<Vec<(Schedule, Cron, chrono_tz::Tz)>, SchedulerError> {
    let parser = CronParser::builder().seconds(Seconds::Optional).build();
    let mut out: Vec<(Schedule, Cron, chrono_tz::Tz)> = Vec::new();
    for app in ctx.apps().iter() {
        for s in app.schedules() {
            if out.iter().any(|(o, _, _)| o.name == s.name) {
                return Err(SchedulerError::Duplicate(s.name.to_string()));
            }
            let cron = parser.parse(&s.cron).map_err(|e| {
                SchedulerError::BadCron(s.name.to_string(), s.cron.clone(), e.to_string())
            })?;
            let tz = chrono_tz::Tz::from_str(&s.time_zone).map_err(|_| {
                SchedulerError::BadTimeZone(s.name.to_string(), s.time_zone.clone())
            })?;
            out.push((s, cron, tz));
        }
    }
    Ok(out)
}

/// A running scheduler role.
pub struct RunningScheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningScheduler {
    /// Stops after the tick being fired, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the scheduler role for `ctx`.
pub fn start(ctx: AppContext) -> Result<RunningScheduler, SchedulerError> {
    let parsed = schedules(&ctx)?;
    let (stop, stopped) = watch::channel(false);
    tracing::info!(schedules = parsed.len(), "scheduler role started");
    let task = tokio::spawn(run(ctx, parsed, stopped));
    Ok(RunningScheduler { stop, task })
}

async fn last_fired(ctx: &AppContext, name: &str) -> Result<Option<DateTime<Utc>>, DbErr> {
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT last_fire_at FROM sen_cron_state WHERE name = ?",
            [name.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(sen_core::jobs::from_micros(r.try_get("", "last_fire_at")?)),
        None => None,
    })
}

async fn run(
    ctx: AppContext,
    parsed: Vec<(Schedule, Cron, chrono_tz::Tz)>,
    mut stopped: watch::Receiver<bool>,
) {
    // Whole seconds: croner carries a start's sub-second part into the
    // ticks it finds, and every scheduler must compute identical ticks.
    let started = Utc::now().trunc_subsecs(0);
    let mut entries = Vec::with_capacity(parsed.len());
    for (schedule, cron, tz) in parsed {
        let last = match schedule.missed {
            Missed::Skip => started,
            Missed::CatchUp(_) => match last_fired(&ctx, schedule.name).await {
                Ok(Some(t)) => t,
                Ok(None) => started,
                Err(e) => {
                    tracing::warn!(schedule = schedule.name, error = %e, "cannot read the last tick; starting from now");
                    started
                }
            },
        };
        entries.push(Entry {
            schedule,
            cron,
            tz,
            last,
        });
    }
    if entries.is_empty() {
        let _ = stopped.changed().await;
        return;
    }
    loop {
        let now = Utc::now();
        for entry in &mut entries {
            let mut ticks = Vec::new();
            let mut t = entry.last;
            while let Some(next) = entry.next_after(t) {
                if next > now || ticks.len() >= MAX_TICKS {
                    break;
                }
                ticks.push(next);
                t = next;
            }
            let Some(&latest) = ticks.last() else {
                continue;
            };
            let keep = match entry.schedule.missed {
                Missed::CatchUp(n) => usize::try_from(n).unwrap_or(usize::MAX).max(1),
                Missed::Skip => ticks.len(),
            };
            let skip = ticks.len().saturating_sub(keep);
            let mut all_fired = true;
            for tick in &ticks[skip..] {
                if let Err(e) = fire(&ctx, &entry.schedule, *tick).await {
                    tracing::warn!(schedule = entry.schedule.name, tick = %tick, error = %e, "could not enqueue a cron tick; will retry");
                    all_fired = false;
                    break;
                }
            }
            if all_fired {
                entry.last = latest;
            }
        }
        let next = entries.iter().filter_map(|e| e.next_after(e.last)).min();
        let wait = next
            .map(|n| (n - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Enqueues tick `tick` of `schedule` once, and records it as the latest.
async fn fire(ctx: &AppContext, schedule: &Schedule, tick: DateTime<Utc>) -> Result<(), DbErr> {
    let db = ctx.db();
    let mut job = schedule
        .job
        .clone()
        .once(format!("cron:{}:{}", schedule.name, micros(tick)));
    if schedule.overlap == Overlap::Skip && job.unique_key().is_none() {
        job = job.unique(format!("cron:{}", schedule.name));
    }
    let tx = db.begin_write().await?;
    let enqueued = ctx.jobs().enqueue(&tx, job).await?;
    let greatest = match db.backend() {
        Backend::Sqlite => "MAX(sen_cron_state.last_fire_at, excluded.last_fire_at)",
        Backend::Postgres => "GREATEST(sen_cron_state.last_fire_at, excluded.last_fire_at)",
    };
    tx.execute_raw(db.statement(
        &format!(
            "INSERT INTO sen_cron_state (name, last_fire_at) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET last_fire_at = {greatest}"
        ),
        [schedule.name.into(), micros(tick).into()],
    ))
    .await?;
    tx.commit().await?;
    if !enqueued.duplicate {
        let lag = (Utc::now() - tick).to_std().unwrap_or(Duration::ZERO);
        metrics::counter!("cron_fired_total", "schedule" => schedule.name).increment(1);
        metrics::histogram!("cron_lag_seconds", "schedule" => schedule.name)
            .record(lag.as_secs_f64());
        tracing::debug!(schedule = schedule.name, tick = %tick, job = %enqueued.id, "cron tick enqueued");
    }
    Ok(())
}

/// A schedule as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleInfo {
    /// Name.
    pub name: &'static str,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub time_zone: String,
    /// The last tick enqueued by any scheduler (RFC 3339), if any.
    pub last_fire_at: Option<String>,
    /// The next tick after now (RFC 3339).
    pub next_fire_at: Option<String>,
}

/// Every schedule with its last and next tick.
pub async fn list(ctx: &AppContext) -> anyhow::Result<Vec<ScheduleInfo>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for (schedule, cron, tz) in schedules(ctx)? {
        let entry = Entry {
            schedule,
            cron,
            tz,
            last: now,
        };
        let last = last_fired(ctx, entry.schedule.name).await?;
        out.push(ScheduleInfo {
            name: entry.schedule.name,
            cron: entry.schedule.cron.clone(),
            time_zone: entry.schedule.time_zone.clone(),
            last_fire_at: last.map(sen_core::clock::iso),
            next_fire_at: entry.next_after(now).map(sen_core::clock::iso),
        });
    }
    Ok(out)
}

/// Enqueues schedule `name`'s job now, outside its cadence; returns the job id.
pub async fn run_now(ctx: &AppContext, name: &str) -> anyhow::Result<String> {
    let (schedule, _, _) = schedules(ctx)?
        .into_iter()
        .find(|(s, _, _)| s.name == name)
        .ok_or_else(|| anyhow::anyhow!("no schedule named `{name}`"))?;
    let job = schedule
        .job
        .clone()
        .once(format!("cron:{name}:manual:{}", uuid::Uuid::now_v7()));
    Ok(ctx.jobs().enqueue(ctx.db().orm(), job).await?.id)
}
