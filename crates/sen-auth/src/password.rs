//! Password hashing with argon2id at the OWASP minimum (m = 19 MiB, t = 2,
//! p = 1) on a small pool of its own threads at the lowest scheduling
//! priority (`SCHED_IDLE`), each reusing its working memory: hashing uses
//! whatever CPU the other routes leave, so a login
//! storm queues for hashing instead of taking cores from them (and while
//! other requests flow, it keeps to half the cores: see `hash_cores`); and
//! the password policy (length, a bundled common-passwords list).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version, password_hash};
use sen_core::{AppError, FieldError};
use sen_hugemem::HugeBlocks;
use tokio::sync::{OnceCell, oneshot};

use crate::hash_cores::Placement;

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

type Task = Box<dyn FnOnce(&mut Hasher) + Send>;

/// The argon2id hasher and its pool of low-priority threads.
#[derive(Clone)]
pub struct Passwords {
    tasks: mpsc::Sender<Task>,
    dummy: Arc<OnceCell<String>>,
}

/// One hashing thread's argon2 and its working memory, kept from one hash
/// to the next. Letting the argon2 crate allocate 19 MiB per hash made the
/// allocator hand pages back and fault them in again (about 2,000 page
/// faults and a 19 MiB memset per login under load, ~15 % of a login's
/// CPU); the memory is resident from this thread's first hash on, and on
/// transparent huge pages where the kernel offers them (see
/// `sen_hugemem`: ten TLB entries instead of ~4,900).
pub struct Hasher {
    argon: Argon2<'static>,
    memory: Option<HugeBlocks>,
}

impl Hasher {
    /// A hasher with Sen's parameters; memory is taken at the first hash.
    pub fn new() -> Self {
        Self {
            argon: argon(),
            memory: None,
        }
    }

    /// `params`' blocks of this thread's memory, grown when a hash names
    /// more memory than any before it.
    fn blocks<'m>(
        memory: &'m mut Option<HugeBlocks>,
        params: &Params,
    ) -> Result<&'m mut [Block], password_hash::Error> {
        let n = params.block_count();
        if memory.as_ref().is_none_or(|m| m.len() < n) {
            *memory = None; // the old memory goes before the new one comes
            *memory = HugeBlocks::new(n);
        }
        let blocks = memory.as_mut().ok_or(password_hash::Error::OutOfMemory)?;
        Ok(&mut blocks.as_mut()[..n])
    }

    /// Hashes `password` with a fresh random salt to a PHC string.
    pub fn hash(&mut self, password: &[u8]) -> Result<String, password_hash::Error> {
        let salt = password_hash::try_generate_salt().map_err(|_| password_hash::Error::Crypto)?;
        let params = self.argon.params().clone();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.argon
            .hash_password_into_with_memory(
                password,
                &salt,
                &mut out,
                Self::blocks(&mut self.memory, &params)?,
            )
            .map_err(password_hash::Error::from)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(Salt::new(&salt)?),
            hash: Some(Output::new(&out)?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc` (any argon2 variant
    /// and parameters the string names, so hashes made with other
    /// parameters keep working); the comparison is constant-time.
    pub fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        self.try_verify(password, phc).unwrap_or(false)
    }

    fn try_verify(&mut self, password: &[u8], phc: &str) -> Result<bool, password_hash::Error> {
        let hash = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(hash.algorithm.as_str())?;
        let version = hash
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&hash)?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        argon
            .hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut out,
                Self::blocks(&mut self.memory, &params)?,
            )
            .map_err(password_hash::Error::from)?;
        // `Output`'s equality is constant-time.
        Ok(Output::new(&out)? == *expected)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// One hashing thread: lowest priority, then hashes until the sender is
/// gone, on the cores `Placement` allows at each hash.
fn hash_thread(rx: Arc<Mutex<mpsc::Receiver<Task>>>, spare_cores: bool) {
    lowest_priority();
    let mut placement = Placement::new(spare_cores);
    let mut hasher = Hasher::new();
    loop {
        let task = match rx.lock() {
            Ok(r) => r.recv(),
            Err(p) => p.into_inner().recv(),
        };
        match task {
            Ok(task) => {
                placement.before_hash();
                task(&mut hasher);
                // The request waited on this hash: it is not interactive.
                sen_core::interactive::served();
            }
            Err(_) => return,
        }
    }
}

/// Puts the calling thread below every other: `SCHED_IDLE` on Linux (it
/// runs only when no other thread wants the core, and a waking request
/// handler preempts it at once), else the lowest nice value. Best effort:
/// without the permission the thread keeps its priority.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        if idle.is_ok() {
            return;
        }
    }
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
}

fn argon() -> Argon2<'static> {
    // The OWASP parameters are constants known to be valid.
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    /// A hasher with `threads` hashing threads (at most that many hashes
    /// run at once; the rest wait in line). With `spare_cores`, they keep
    /// to half the cores while other requests flow (see `hash_cores`).
    pub fn new(threads: usize, spare_cores: bool) -> Self {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sen-argon2-{i}"))
                .spawn(move || hash_thread(rx, spare_cores));
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
        f: impl FnOnce(&mut Hasher) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = oneshot::channel();
        self.tasks
            .send(Box::new(move |hasher| {
                let _ = done.send(f(hasher));
            }))
            .map_err(|_| AppError::internal(anyhow::anyhow!("password hashing threads stopped")))?;
        result
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("password hashing task failed")))
    }

    /// Hashes `password` to a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        self.run(move |h| h.hash(password.as_bytes()))
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
            .run(move |h| h.verify(password.as_bytes(), &hash))
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

    #[test]
    fn reused_memory_hasher_matches_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut h = Hasher::new();
        let ours = h.hash(b"correct horse battery").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // The crate's own verifier accepts our hash...
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(argon().verify_password(b"wrong", &parsed).is_err());
        // ...and ours accepts the crate's, also with other parameters
        // (more memory than the reused buffer holds, then less).
        for (m, t) in [(32 * 1024, 1), (8 * 1024, 3)] {
            let params = Params::new(m, t, 1, None).unwrap();
            let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"pass phrase two")
                .unwrap()
                .to_string();
            assert!(h.verify(b"pass phrase two", &other), "{other}");
            assert!(!h.verify(b"pass phrase 2", &other), "{other}");
        }
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"old scheme")
            .unwrap()
            .to_string();
        assert!(h.verify(b"old scheme", &argon2i));
        assert!(h.verify(b"correct horse battery", &ours), "buffer reused");
        // Salts differ from hash to hash.
        assert_ne!(h.hash(b"same").unwrap(), h.hash(b"same").unwrap());
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$pbkdf2$x",
        ] {
            assert!(!h.verify(b"x", bad), "{bad}");
        }
    }

    /// The cores each of `p`'s two threads may use, asked of both at once
    /// (each task holds its thread a moment, so the other takes the next).
    #[cfg(target_os = "linux")]
    async fn cores_of_both_threads(p: &Passwords) -> [usize; 2] {
        let ask = || {
            p.run(|_| {
                std::thread::sleep(std::time::Duration::from_millis(30));
                crate::hash_cores::cores_of_this_thread()
            })
        };
        let (a, b) = futures::join!(ask(), ask());
        [a.unwrap(), b.unwrap()]
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_keeps_to_half_the_cores_while_requests_flow() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        let all = crate::hash_cores::cores_of_this_thread();
        if all < 2 {
            eprintln!("skipped: this machine lets the test run on one core only");
            return;
        }
        let p = Passwords::new(2, true);
        let everywhere = Passwords::new(2, false);
        assert_eq!(cores_of_both_threads(&p).await, [all, all], "nothing flows");

        // Interactive requests answered at about 200 a millisecond, from a
        // thread of their own, as the HTTP edge counts them.
        let stop = Arc::new(AtomicBool::new(false));
        let pump = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..200 {
                        sen_core::interactive::answered(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let eventually = async |want: usize| {
            for _ in 0..50 {
                if cores_of_both_threads(&p).await == [want, want] {
                    return true;
                }
                tokio::time::sleep(sen_core::interactive::WINDOW / 2).await;
            }
            false
        };
        assert!(eventually(all / 2).await, "requests flow: half the cores");
        // The requests still flow while the other hasher is asked.
        let mut flowing = false;
        for _ in 0..100 {
            flowing = sen_core::interactive::flowing();
            if flowing {
                break;
            }
            tokio::time::sleep(sen_core::interactive::WINDOW / 4).await;
        }
        assert!(flowing);
        assert_eq!(
            cores_of_both_threads(&everywhere).await,
            [all, all],
            "auth_hash_spare_cores off: every core even while requests flow"
        );
        stop.store(true, Ordering::Relaxed);
        pump.join().unwrap();
        assert!(eventually(all).await, "requests stopped: every core again");
        // Hashes that requests waited on (logins) are not interactive load.
        for _ in 0..3 {
            p.hash("correct horse battery".into()).await.unwrap();
        }
        assert_eq!(cores_of_both_threads(&p).await, [all, all]);
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_fail() {
        let p = Passwords::new(1, true);
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
