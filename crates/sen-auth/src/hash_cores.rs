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
    /// `None` when there is nothing to steer: the setting is off, fewer than
    /// two cores, or not Linux.
    #[cfg(target_os = "linux")]
    cores: Option<linux::Cores>,
}

impl Placement {
    /// The calling thread's placement, from the cores it may use now (the
    /// process's, unless narrowed by the operator with `taskset` or a
    /// cgroup). With fewer than two cores there is nothing to leave free;
    /// with `spare_cores` off (`auth_hash_spare_cores`) the thread stays
    /// where it is.
    pub(crate) fn new(spare_cores: bool) -> Self {
        #[cfg(not(target_os = "linux"))]
        let _ = spare_cores;
        Self {
            #[cfg(target_os = "linux")]
            cores: spare_cores.then(linux::Cores::of_this_thread).flatten(),
        }
    }

    /// Moves the calling thread to the cores it should hash on now.
    pub(crate) fn before_hash(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(cores) = &mut self.cores {
            cores.follow(sen_core::interactive::flowing());
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;

    /// All the thread's cores, the upper half of them, and which it is on.
    pub(super) struct Cores {
        all: CpuSet,
        upper: CpuSet,
        fenced: bool,
    }

    impl Cores {
        pub(super) fn of_this_thread() -> Option<Self> {
            let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
            let cores = listed(&all);
            if cores.len() < 2 {
                return None;
            }
            let mut upper = CpuSet::new();
            for &c in &cores[cores.len() - cores.len() / 2..] {
                upper.set(c).ok()?;
            }
            Some(Self {
                all,
                upper,
                fenced: false,
            })
        }

        /// Keeps the calling thread to the upper half (`fence`) or lets it
        /// use every core again; a system call only when that changes.
        pub(super) fn follow(&mut self, fence: bool) {
            if fence == self.fenced {
                return;
            }
            let set = if fence { &self.upper } else { &self.all };
            match sched_setaffinity(Pid::from_raw(0), set) {
                Ok(()) => self.fenced = fence,
                // Best effort: the hash runs wherever the thread is.
                Err(e) => {
                    tracing::debug!(error = %e, "could not change the hashing thread's cores")
                }
            }
        }
    }

    /// The cores in `set`.
    pub(super) fn listed(set: &CpuSet) -> Vec<usize> {
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect()
    }
}

/// How many cores the calling thread may run on (for tests).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn cores_of_this_thread() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map_or(0, |set| linux::listed(&set).len())
}
