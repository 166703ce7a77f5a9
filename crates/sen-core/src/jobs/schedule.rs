//! Cron schedules an app declares: a name, a cron expression (seconds
//! optional), a time zone, the job each tick enqueues, what to do about
//! ticks missed while no scheduler ran, and whether ticks may overlap.

use super::enqueue::NewJob;

/// What happens to ticks that passed while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Forget them; fire from now on.
    Skip,
    /// Fire at most the last `n` of them.
    CatchUp(u32),
}

/// Whether a tick fires while the previous tick's job is still unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Fire anyway.
    Allow,
    /// Skip the tick.
    Skip,
}

/// A cron entry.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique name (`reports.daily`); part of each tick's once key.
    pub name: &'static str,
    /// Cron expression, five fields or six with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in (`UTC`, `Asia/Ho_Chi_Minh`).
    pub time_zone: String,
    /// The job each tick enqueues.
    pub job: NewJob,
    /// Missed-run policy.
    pub missed: Missed,
    /// Overlap policy.
    pub overlap: Overlap,
}

impl Schedule {
    /// `job` on `cron` in UTC, skipping missed ticks, overlaps allowed.
    pub fn new(name: &'static str, cron: impl Into<String>, job: NewJob) -> Self {
        Self {
            name,
            cron: cron.into(),
            time_zone: "UTC".into(),
            job,
            missed: Missed::Skip,
            overlap: Overlap::Allow,
        }
    }

    /// Reads the expression in `tz`.
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.time_zone = tz.into();
        self
    }

    /// Fires up to `n` missed ticks after downtime.
    pub fn catch_up(mut self, n: u32) -> Self {
        self.missed = Missed::CatchUp(n);
        self
    }

    /// Skips a tick while the previous one's job is unfinished.
    pub fn skip_overlap(mut self) -> Self {
        self.overlap = Overlap::Skip;
        self
    }
}
