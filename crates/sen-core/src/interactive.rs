//! Whether interactive requests are flowing through this process, for
//! CPU-heavy background work (password hashing) that should stay out of
//! their way.
//!
//! The HTTP edge counts every answered request ([`answered`]); work that a
//! request waited on, such as the hash of a login, counts the request it
//! served ([`served`]). Requests that did not wait on such work are the
//! interactive ones, and [`flowing`] says whether at least
//! [`MIN_PER_WINDOW`] of them were answered in the last whole
//! [`WINDOW`]. Each count is one relaxed atomic add on a counter of the
//! current window: nothing on a request's path waits or allocates.
//!
//! Counts are process-wide (a process serves one deployment) and
//! approximate at window edges (two threads may open the same window at
//! once and lose a handful of counts): they steer a scheduling choice,
//! not an account.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The span over which requests are counted.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Interactive requests per [`WINDOW`] (500 a second) at and above which
/// they are said to flow. Below that they leave the cores idle nearly all
/// the time, and background work rarely holds a core a request wants.
pub const MIN_PER_WINDOW: u64 = 50;

/// Requests in the current window and in the one before it.
#[derive(Debug, Default)]
pub struct Counter {
    window: AtomicU64,
    current: AtomicU64,
    previous: AtomicU64,
}

impl Counter {
    /// A counter with nothing counted.
    pub const fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            current: AtomicU64::new(0),
            previous: AtomicU64::new(0),
        }
    }

    /// Counts one in window `window`.
    pub fn add(&self, window: u64) {
        let open = self.window.load(Relaxed);
        if open != window
            && self
                .window
                .compare_exchange(open, window, Relaxed, Relaxed)
                .is_ok()
        {
            let counted = self.current.swap(0, Relaxed);
            // Only a window right before this one is "the last window".
            self.previous
                .store(if window == open + 1 { counted } else { 0 }, Relaxed);
        }
        self.current.fetch_add(1, Relaxed);
    }

    /// How many were counted in the whole window before `window`.
    pub fn last_window(&self, window: u64) -> u64 {
        let open = self.window.load(Relaxed);
        if open == window {
            self.previous.load(Relaxed)
        } else if open + 1 == window {
            self.current.load(Relaxed)
        } else {
            0
        }
    }
}

/// The two counts [`flowing`] compares.
#[derive(Debug, Default)]
pub struct Meter {
    answered: Counter,
    served: Counter,
}

impl Meter {
    /// A meter with nothing counted.
    pub const fn new() -> Self {
        Self {
            answered: Counter::new(),
            served: Counter::new(),
        }
    }

    /// Counts a request answered at `at`.
    pub fn answered(&self, at: Instant) {
        self.answered.add(window_of(at));
    }

    /// Counts a request whose background work finished at `at`.
    pub fn served(&self, at: Instant) {
        self.served.add(window_of(at));
    }

    /// Whether at least [`MIN_PER_WINDOW`] requests that did not wait on
    /// background work were answered in the last whole window before `at`.
    pub fn flowing(&self, at: Instant) -> bool {
        let window = window_of(at);
        let interactive = self
            .answered
            .last_window(window)
            .saturating_sub(self.served.last_window(window));
        interactive >= MIN_PER_WINDOW
    }
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
static METER: Meter = Meter::new();

/// The number of the window `at` falls in.
fn window_of(at: Instant) -> u64 {
    let since = at.saturating_duration_since(*EPOCH);
    u64::try_from(since.as_millis() / WINDOW.as_millis()).unwrap_or(u64::MAX)
}

/// Counts a request answered now-ish (`at`), in the process's meter; the
/// HTTP edge calls it for every response.
pub fn answered(at: Instant) {
    METER.answered(at);
}

/// Counts a request whose background work (say, a password hash) just
/// finished, in the process's meter.
pub fn served() {
    METER.served(Instant::now());
}

/// Whether interactive requests are flowing through this process now (see
/// [`Meter::flowing`]).
pub fn flowing() -> bool {
    METER.flowing(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, window: u64) -> Instant {
        base + WINDOW * u32::try_from(window).unwrap_or(u32::MAX)
    }

    #[test]
    fn counts_interactive_requests_of_the_last_whole_window() {
        // Window numbers are relative to the process's epoch; start well
        // after it so the arithmetic below stays in one base.
        let base = *EPOCH + WINDOW * 1000;
        let meter = Meter::new();
        assert!(!meter.flowing(at(base, 1)), "nothing counted");

        // Window 1: enough interactive requests; they show from window 2 on.
        for _ in 0..MIN_PER_WINDOW {
            meter.answered(at(base, 1));
        }
        assert!(
            !meter.flowing(at(base, 1)),
            "the open window does not count"
        );
        assert!(meter.flowing(at(base, 2)));
        assert!(!meter.flowing(at(base, 3)), "a window later they are gone");

        // Window 4: as many answers, but each waited on background work
        // (a login's hash): nothing interactive.
        for _ in 0..MIN_PER_WINDOW + 5 {
            meter.served(at(base, 4));
            meter.answered(at(base, 4));
        }
        assert!(!meter.flowing(at(base, 5)));

        // Window 5: one short of the threshold.
        for _ in 0..MIN_PER_WINDOW - 1 {
            meter.answered(at(base, 5));
        }
        assert!(!meter.flowing(at(base, 6)));

        // Window 6 counts; window 7 opens: window 6 is now the last one.
        for _ in 0..MIN_PER_WINDOW {
            meter.answered(at(base, 6));
        }
        meter.answered(at(base, 7));
        assert!(meter.flowing(at(base, 7)));
        // A gap of a window: window 7's one answer is not window 9's past.
        for _ in 0..MIN_PER_WINDOW {
            meter.answered(at(base, 9));
        }
        assert!(!meter.flowing(at(base, 9)));
        assert!(meter.flowing(at(base, 10)));
    }
}
