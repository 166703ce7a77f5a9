//! Which cores the password hashing threads may run on: all of the
//! process's while nothing else is going on, so a login storm alone hashes
//! at the full rate; only the upper half of them (at least one core left
//! to requests) while interactive requests flow
//! (`sen_core::interactive::flowing`).
//!
//! Why: the hashing threads run at `SCHED_IDLE`, so a request handler that
//! wakes on their core preempts them at once. But the wake still costs an
//! inter-processor interrupt and a context switch (a core that is truly
//! idle polls, and wakes for nearly nothing), and the handler then runs on
//! caches the hash has just swept (19 MiB). On the 2-core bench machine
//! the threads took only the ~5 % of CPU that `GET /api/v1/me` at full
//! load leaves idle, yet doubled its p99. Kept to one core while requests
//! flow, they leave the other to requests undisturbed: during a login
//! storm `/me`'s p99 fell from 4.3 to 3.4 ms (means of 6 rounds, the two
//! builds alternating), 1.8x to 1.2x its idle p99 (medians), while the
//! storm's logins went from about 46 to 40 a second. A login storm alone
//! still hashes on every core.
//!
//! Each thread checks before each hash and changes its own affinity only
//! when the answer changes; a hash already running finishes where it is.
//! Operators who want every core for hashing at all times (say, a
//! deployment that mostly signs users in) turn `auth_hash_spare_cores` off.

/// One hashing thread's placement.
pub(crate) struct Placement {
    #[cfg(target_os = "linux")]
    sets: Option<linux::Sets>,
    fenced: bool,
}

impl Placement {
    /// The calling thread's placement, from the cores it may use now (the
    /// process's, unless narrowed by the operator with `taskset` or a
    /// cgroup). With fewer than two cores there is nothing to leave free;
    /// with `spare_cores` off (`auth_hash_spare_cores`) the thread stays
    /// where it is.
    pub(crate) fn new(spare_cores: bool) -> Self {
        Self {
            #[cfg(target_os = "linux")]
            sets: spare_cores.then(linux::Sets::of_this_thread).flatten(),
            fenced: false,
        }
    }

    /// Moves the calling thread to the cores it should hash on now.
    pub(crate) fn before_hash(&mut self) {
        #[cfg(target_os = "linux")]
        if self.sets.is_none() {
            return;
        }
        let fence = sen_core::interactive::flowing();
        if fence == self.fenced {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(sets) = &self.sets
            && let Err(e) = sets.apply(fence)
        {
            // Best effort: the hash runs wherever the thread is.
            tracing::debug!(error = %e, "could not change the hashing thread's cores");
            return;
        }
        self.fenced = fence;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;

    /// All the thread's cores, and the upper half of them.
    pub(super) struct Sets {
        all: CpuSet,
        upper: CpuSet,
    }

    impl Sets {
        pub(super) fn of_this_thread() -> Option<Self> {
            let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
            let cores: Vec<usize> = (0..CpuSet::count())
                .filter(|&c| all.is_set(c).unwrap_or(false))
                .collect();
            if cores.len() < 2 {
                return None;
            }
            let mut upper = CpuSet::new();
            for &c in &cores[cores.len() - cores.len() / 2..] {
                upper.set(c).ok()?;
            }
            Some(Self { all, upper })
        }

        /// Keeps the calling thread to the upper half (`fence`) or lets it
        /// use every core again.
        pub(super) fn apply(&self, fence: bool) -> nix::Result<()> {
            let set = if fence { &self.upper } else { &self.all };
            sched_setaffinity(Pid::from_raw(0), set)
        }
    }
}

/// How many cores the calling thread may run on (for tests).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn cores_of_this_thread() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity};
    sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .count()
        })
        .unwrap_or(0)
}
