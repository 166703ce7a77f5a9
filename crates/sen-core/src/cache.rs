//! `Cache`: bytes by key with an optional time to live. In-process (moka)
//! on the embedded default, Redis when `redis_url` is set, so every instance
//! sees the same entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::redis_link::RedisLink;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backing store cannot be reached; the client should get 503.
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// A stored value did not decode as the requested type.
    #[error("cached value has the wrong shape: {0}")]
    Decode(#[from] serde_json::Error),
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Unavailable(_) => AppError::unavailable("cache", e),
            CacheError::Decode(_) => AppError::internal(e),
        }
    }
}

/// A shared key-value cache.
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;
    /// Stores `value` under `key`, expiring after `ttl` when given.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Removes `key`; true when something was removed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;
}

impl dyn Cache {
    /// Reads a JSON value.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        match self.get(key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Stores a JSON value.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.set(key, Bytes::from(serde_json::to_vec(value)?), ttl)
            .await
    }
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
}

struct PerEntryExpiry;

impl moka::Expiry<String, Entry> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(updated_at))
    }
}

/// In-process cache bounded by total bytes.
pub struct MemoryCache {
    inner: moka::future::Cache<String, Entry>,
}

impl MemoryCache {
    /// A cache holding at most `capacity_bytes` of keys and values.
    pub fn new(capacity_bytes: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryExpiry)
            .build();
        Self { inner }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.inner.get(key).await.and_then(|e| match e.expires_at {
            Some(at) if at <= Instant::now() => None,
            _ => Some(e.value),
        }))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        let expires_at = ttl.map(|t| Instant::now() + t);
        self.inner
            .insert(key.to_string(), Entry { value, expires_at })
            .await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.inner.remove(key).await.is_some())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Redis-backed cache shared by every instance.
pub struct RedisCache {
    link: RedisLink,
}

impl RedisCache {
    /// A cache on `link`.
    pub fn new(link: RedisLink) -> Self {
        Self { link }
    }
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let value: Option<Vec<u8>> = self
            .link
            .conn()
            .get(self.link.key("cache", key))
            .await
            .map_err(unavailable)?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.link.key("cache", key);
        let mut conn = self.link.conn();
        match ttl {
            Some(ttl) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                conn.pset_ex::<_, _, ()>(key, value.as_ref(), ms)
                    .await
                    .map_err(unavailable)
            }
            None => conn
                .set::<_, _, ()>(key, value.as_ref())
                .await
                .map_err(unavailable),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let removed: u64 = self
            .link
            .conn()
            .del(self.link.key("cache", key))
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// The cache an instance uses.
pub type SharedCache = Arc<dyn Cache>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_get_set_ttl_delete() {
        let cache: SharedCache = Arc::new(MemoryCache::new(1024 * 1024));
        assert_eq!(cache.get("a").await.unwrap(), None);
        cache
            .set("a", Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        cache
            .set_json("b", &vec![1, 2], Some(Duration::from_millis(50)))
            .await
            .unwrap();
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            cache.get_json::<Vec<i32>>("b").await.unwrap(),
            Some(vec![1, 2])
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            cache.get("b").await.unwrap(),
            None,
            "expired entry must be gone"
        );
        assert!(cache.delete("a").await.unwrap());
        assert!(!cache.delete("a").await.unwrap());
        assert_eq!(cache.get("a").await.unwrap(), None);
    }
}
