//! Prints how many argon2id hashes per second `threads` threads compute
//! in `secs` seconds (fractions allowed), with exactly the parameters Sen
//! hashes passwords with: the ceiling of login throughput on this machine.
//! Each thread hashes once before the clock starts, as a running server's
//! hashing threads have (their memory is resident from the first hash on),
//! so a short window measures the steady rate and not thread start-up.
//!
//!   auth-bench <threads> <secs>

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let done = Arc::new(AtomicU64::new(0));
    // Every thread warmed up, plus the main thread that starts the clock;
    // all leave the barrier together, microseconds apart.
    let ready = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (done, ready) = (done.clone(), ready.clone());
            std::thread::spawn(move || {
                // Sen's own hasher (its working memory reused from hash to
                // hash), with nothing else around it.
                let mut hasher = sen_auth::password::Hasher::new();
                assert!(hasher.hash(b"a long pass phrase").is_ok());
                ready.wait();
                let deadline = Instant::now() + Duration::from_secs_f64(secs);
                while Instant::now() < deadline {
                    assert!(hasher.hash(b"a long pass phrase").is_ok());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    ready.wait();
    let began = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
    println!("{rate:.1}");
}
