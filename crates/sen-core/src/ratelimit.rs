//! Rate limiting with GCRA (the generic cell rate algorithm): one stored
//! number per key, the "theoretical arrival time", so a check is one
//! read-modify-write. In-process for one instance; a Lua script on Redis
//! when Redis is configured, so every instance shares one budget per key
//! (Redis's own clock decides, so instance clocks need not agree).
//!
//! Handlers call it with keys they choose (`login:ip:1.2.3.4`,
//! `login:account:ann@example.com`), so a locked account never locks out
//! other accounts behind the same address.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};

use crate::error::AppError;
use crate::redis_link::RedisLink;

/// How many requests a key may make: `burst` at once, refilled at one per
/// `period / burst`.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// Requests allowed back to back.
    pub burst: u32,
    /// Time over which `burst` requests refill.
    pub period: Duration,
}

impl Quota {
    /// `burst` requests per `period`.
    pub const fn new(burst: u32, period: Duration) -> Self {
        Self { burst, period }
    }

    fn interval_ms(&self) -> i64 {
        (self.period.as_millis() as i64 / i64::from(self.burst.max(1))).max(1)
    }

    fn tolerance_ms(&self) -> i64 {
        self.interval_ms() * i64::from(self.burst.max(1) - 1)
    }
}

/// The GCRA step: given the stored arrival time, either the new one to
/// store (allowed) or how long to wait (denied).
fn gcra(stored: Option<i64>, now: i64, q: Quota) -> Result<i64, i64> {
    let tat = stored.unwrap_or(now).max(now);
    let wait = tat - now - q.tolerance_ms();
    if wait > 0 {
        Err(wait)
    } else {
        Ok(tat + q.interval_ms())
    }
}

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return wait end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', new - now + 1000)
return 0
";

enum Store {
    Memory(moka::future::Cache<String, Arc<std::sync::Mutex<i64>>>),
    Redis(RedisLink, Arc<redis::Script>),
}

/// The limiter of one process.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<Store>,
}

/// A denied request: how long until it would pass.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    /// Wait before retrying.
    pub retry_after: Duration,
}

impl From<Limited> for AppError {
    fn from(l: Limited) -> Self {
        let secs = l.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        AppError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            .with_detail(format!("Too many attempts; try again in {secs} s."))
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1")),
            )
    }
}

impl RateLimiter {
    /// An in-process limiter (keys idle for an hour are forgotten).
    pub fn memory() -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_idle(Duration::from_secs(3600))
            .build();
        Self {
            store: Arc::new(Store::Memory(cache)),
        }
    }

    /// A limiter shared by every instance through Redis.
    pub fn redis(link: RedisLink) -> Self {
        Self {
            store: Arc::new(Store::Redis(link, Arc::new(redis::Script::new(SCRIPT)))),
        }
    }

    /// Counts one request against `key`. `Err(Limited)` when over quota;
    /// `Err(AppError)` 503 when Redis cannot be reached.
    pub async fn check(&self, key: &str, quota: Quota) -> Result<(), AppError> {
        match self.acquire(key, quota).await? {
            Ok(()) => Ok(()),
            Err(limited) => Err(limited.into()),
        }
    }

    /// Like [`RateLimiter::check`] for background work, which waits instead
    /// of answering 429: `Ok(Err(Limited))` says how long.
    pub async fn acquire(&self, key: &str, quota: Quota) -> Result<Result<(), Limited>, AppError> {
        Ok(match &*self.store {
            Store::Memory(cache) => {
                let cell = cache
                    .get_with(key.to_string(), async {
                        Arc::new(std::sync::Mutex::new(0))
                    })
                    .await;
                let now = crate::clock::now().timestamp_millis();
                let mut tat = match cell.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let stored = (*tat != 0).then_some(*tat);
                match gcra(stored, now, quota) {
                    Ok(next) => {
                        *tat = next;
                        Ok(())
                    }
                    Err(wait) => Err(Limited {
                        retry_after: Duration::from_millis(wait as u64),
                    }),
                }
            }
            Store::Redis(link, script) => {
                let mut conn = link.conn();
                let wait: i64 = script
                    .key(link.key("rl", key))
                    .arg(quota.interval_ms())
                    .arg(quota.tolerance_ms())
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| AppError::unavailable("redis", e))?;
                if wait > 0 {
                    Err(Limited {
                        retry_after: Duration::from_millis(wait as u64),
                    })
                } else {
                    Ok(())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_spaces_requests() {
        let q = Quota::new(3, Duration::from_secs(3));
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, q).unwrap());
        }
        let wait = gcra(tat, 0, q).unwrap_err();
        assert_eq!(wait, 1000);
        assert!(gcra(tat, 999, q).is_err());
        assert!(gcra(tat, 1000, q).is_ok(), "one more after one interval");
    }

    #[tokio::test]
    async fn memory_limiter_keeps_keys_apart() {
        let l = RateLimiter::memory();
        let q = Quota::new(2, Duration::from_secs(60));
        assert!(l.check("a", q).await.is_ok());
        assert!(l.check("a", q).await.is_ok());
        let e = l.check("a", q).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            l.check("b", q).await.is_ok(),
            "another key has its own budget"
        );
    }
}
