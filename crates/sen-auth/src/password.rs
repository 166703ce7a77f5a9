//! Password hashing with argon2id at the OWASP minimum (m = 19 MiB, t = 2,
//! p = 1) on a small pool of its own threads at the lowest scheduling
//! priority: hashing uses whatever CPU the other routes leave, so a login
//! storm queues for hashing instead of taking cores from them; and the
//! password policy (length, a bundled common-passwords list).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use sen_core::{AppError, FieldError};
use tokio::sync::{OnceCell, oneshot};

/// OWASP's argon2id minimum: memory in KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// OWASP's argon2id minimum: iterations.
pub const ITERATIONS: u32 = 2;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Checks a new password: 8–128 characters and not a well-known one.
/// `field` names the body field in the 422.
pub fn check_policy(field: &str, password: &str) -> Result<(), AppError> {
    let n = password.chars().count();
    let problem = if n < 8 {
        Some(("too_short", "must be at least 8 characters"))
    } else if n > 128 {
        Some(("too_long", "must be at most 128 characters"))
    } else if COMMON.contains(password.to_lowercase().as_str()) {
        Some((
            "too_common",
            "is one of the most common passwords; choose another",
        ))
    } else {
        None
    };
    match problem {
        Some((code, msg)) => Err(AppError::validation(vec![FieldError::new(
            field, code, msg,
        )])),
        None => Ok(()),
    }
}

type Task = Box<dyn FnOnce(&Argon2<'static>) + Send>;

/// The argon2id hasher and its pool of low-priority threads.
#[derive(Clone)]
pub struct Passwords {
    tasks: mpsc::Sender<Task>,
    dummy: Arc<OnceCell<String>>,
}

/// One hashing thread: lowest priority, then hashes until the sender is gone.
fn hash_thread(rx: Arc<Mutex<mpsc::Receiver<Task>>>) {
    // Best effort: without the permission the thread keeps normal priority.
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    let argon = argon();
    loop {
        let task = match rx.lock() {
            Ok(r) => r.recv(),
            Err(p) => p.into_inner().recv(),
        };
        match task {
            Ok(task) => task(&argon),
            Err(_) => return,
        }
    }
}

fn argon() -> Argon2<'static> {
    // The OWASP parameters are constants known to be valid.
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    /// A hasher with `threads` hashing threads (at most that many hashes
    /// run at once; the rest wait in line).
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sen-argon2-{i}"))
                .spawn(move || hash_thread(rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            tasks: tx,
            dummy: Arc::new(OnceCell::new()),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = oneshot::channel();
        self.tasks
            .send(Box::new(move |argon| {
                let _ = done.send(f(argon));
            }))
            .map_err(|_| AppError::internal(anyhow::anyhow!("password hashing threads stopped")))?;
        result
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("password hashing task failed")))
    }

    /// Hashes `password` to a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        self.run(move |a| a.hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await?
            .map_err(|e| AppError::internal(anyhow::anyhow!("hashing failed: {e}")))
    }

    /// Whether `password` matches `hash`. With no hash (unknown account) it
    /// still spends one full verification on a dummy hash, so the answer
    /// takes the same time whether or not the account exists.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, AppError> {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (self.dummy_hash().await?, false),
        };
        let ok = self
            .run(move |a| match PasswordHash::new(&hash) {
                Ok(parsed) => a.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> Result<String, AppError> {
        self.dummy
            .get_or_try_init(|| async {
                let pw = crate::crypto::random_token::<16>()?;
                self.hash(pw).await
            })
            .await
            .cloned()
    }

    /// One raw hash with these parameters, outside the slot pool (bench).
    pub fn raw_hash_once(password: &[u8]) -> bool {
        argon().hash_password(password).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_short_long_and_common() {
        assert_eq!(
            check_policy("password", "short").unwrap_err().code(),
            "validation_failed"
        );
        assert!(check_policy("password", &"x".repeat(129)).is_err());
        let e = check_policy("password", "Password123").unwrap_err();
        assert_eq!(e.field_errors()[0].code, "too_common");
        assert!(check_policy("password", "correct horse battery").is_ok());
        assert!(
            check_policy("password", &"é".repeat(128)).is_ok(),
            "counts characters"
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_fail() {
        let p = Passwords::new(1);
        let h = p.hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            p.verify("correct horse battery".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !p.verify("wrong horse battery".into(), Some(h))
                .await
                .unwrap()
        );
        assert!(
            !p.verify("correct horse battery".into(), None)
                .await
                .unwrap()
        );
        assert!(
            !p.verify("x".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
    }
}
