//! Prints how many argon2id hashes per second `threads` threads compute
//! in `secs` seconds, with exactly the parameters Sen hashes passwords
//! with: the ceiling of login throughput on this machine.
//!
//!   auth-bench <threads> <secs>

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                // Sen's own hasher (its working memory reused from hash to
                // hash), with nothing else around it.
                let mut hasher = sen_auth::password::Hasher::new();
                while Instant::now() < deadline {
                    assert!(hasher.hash(b"a long pass phrase").is_ok());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("{rate:.1}");
}
