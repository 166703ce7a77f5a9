//! Signing keys: generated here, stored in `sen_signing_keys` with the
//! private half sealed under `SEN_SECRET_KEY`, published at
//! `/.well-known/jwks.json`, and rotated with overlap. A new key is
//! published `PUBLISH_LEAD` before any instance signs with it (instances
//! reload the set every `RELOAD`), and a replaced key stays published until
//! every token it signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppError};
use serde_json::json;

use crate::crypto::{Sealer, b64};
use crate::signer::Signer;

/// How often every instance reloads the key set.
pub const RELOAD: Duration = Duration::from_secs(60);
/// How long a new key is published before it signs (more than two reloads).
pub const PUBLISH_LEAD: Duration = Duration::from_secs(150);

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// Its algorithm; a token naming another is rejected.
    pub alg: Algorithm,
    /// The public key.
    pub key: DecodingKey,
}

/// The key set one instance holds in memory.
#[derive(Clone, Default)]
pub struct KeySet {
    /// The key that signs now.
    pub signer: Option<Signer>,
    /// Every published key by kid.
    pub verifiers: HashMap<String, VerifyKey>,
    /// `/.well-known/jwks.json`, serialised.
    pub jwks: bytes::Bytes,
}

/// The shared, reloadable key set.
#[derive(Clone)]
pub struct KeyRing {
    set: Arc<RwLock<Arc<KeySet>>>,
    sealer: Sealer,
    alg: Algorithm,
    /// When a token with an unknown kid last made us re-read the keys.
    last_refresh: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// Which algorithm new keys use, from `auth_jwt_alg`.
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    match name {
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        _ => "EdDSA",
    }
}

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

struct Generated {
    kid: String,
    public_jwk: serde_json::Value,
    private_der: Vec<u8>,
}

fn generate(alg: Algorithm) -> anyhow::Result<Generated> {
    let kid = uuid::Uuid::now_v7().simple().to_string();
    match alg {
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
            let der = pair
                .as_der()
                .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
            let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            Ok(Generated {
                public_jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64(&parts.n), "e": b64(&parts.e)}),
                kid,
                private_der: der.as_ref().to_vec(),
            })
        }
        _ => {
            let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|_| anyhow::anyhow!("Ed25519 key parse failed"))?;
            Ok(Generated {
                public_jwk: json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                    "kid": kid, "x": b64(pair.public_key().as_ref())}),
                kid,
                private_der: doc.as_ref().to_vec(),
            })
        }
    }
}

fn decoding_key(jwk: &serde_json::Value) -> Option<(Algorithm, DecodingKey)> {
    let s = |k: &str| jwk.get(k).and_then(|v| v.as_str());
    match s("alg")? {
        "EdDSA" => Some((
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(s("x")?).ok()?,
        )),
        "RS256" => Some((
            Algorithm::RS256,
            DecodingKey::from_rsa_components(s("n")?, s("e")?).ok()?,
        )),
        _ => None,
    }
}

impl KeyRing {
    /// An empty ring; call [`KeyRing::load`] before use.
    pub fn new(sealer: Sealer, alg: Algorithm) -> Self {
        Self {
            set: Arc::new(RwLock::new(Arc::new(KeySet::default()))),
            sealer,
            alg,
            last_refresh: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Re-reads the published keys because a token named a kid this
    /// process does not know (another instance created or rotated a key
    /// since the last reload). At most once a second, so tokens with made-up
    /// kids cannot turn into a query each. Returns whether it re-read.
    pub async fn refresh_unknown(&self, ctx: &AppContext) -> bool {
        {
            let mut last = match self.last_refresh.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        match self.read(ctx).await {
            Ok(set) if set.signer.is_some() => {
                let set = Arc::new(set);
                match self.set.write() {
                    Ok(mut g) => *g = set,
                    Err(p) => *p.into_inner() = set,
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read signing keys");
                false
            }
        }
    }

    /// The current set (cheap: one `Arc` clone).
    pub fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the published keys; creates the first key when there is none
    /// that may sign yet.
    pub async fn load(&self, ctx: &AppContext) -> anyhow::Result<()> {
        let mut set = self.read(ctx).await?;
        if set.signer.is_none() {
            self.insert(ctx, now_ms()).await?;
            set = self.read(ctx).await?;
        }
        let set = Arc::new(set);
        match self.set.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
        Ok(())
    }

    async fn insert(&self, ctx: &AppContext, active_from: i64) -> anyhow::Result<String> {
        let alg = self.alg;
        let g = tokio::task::spawn_blocking(move || generate(alg)).await??;
        let sealed = self.sealer.seal(&g.private_der)?;
        let db = ctx.db();
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO sen_signing_keys (kid, alg, public_jwk, private_sealed, created_at, active_from) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    g.kid.clone().into(),
                    alg_name(alg).into(),
                    g.public_jwk.to_string().into(),
                    sealed.into(),
                    now_ms().into(),
                    active_from.into(),
                ],
            ))
            .await?;
        Ok(g.kid)
    }

    async fn read(&self, ctx: &AppContext) -> anyhow::Result<KeySet> {
        let now = now_ms();
        let db = ctx.db();
        let rows = db
            .orm()
            .query_all_raw(db.statement(
                "SELECT kid, public_jwk, private_sealed, active_from FROM sen_signing_keys WHERE retire_at IS NULL OR retire_at > ? ORDER BY active_from DESC, kid DESC",
                [now.into()],
            ))
            .await?;
        let mut set = KeySet::default();
        let mut published = Vec::new();
        for row in rows {
            let kid: String = row.try_get("", "kid")?;
            let jwk: serde_json::Value =
                serde_json::from_str(&row.try_get::<String>("", "public_jwk")?)?;
            let active_from: i64 = row.try_get("", "active_from")?;
            let Some((alg, key)) = decoding_key(&jwk) else {
                tracing::warn!(kid, "skipping a signing key this build cannot read");
                continue;
            };
            if set.signer.is_none() && active_from <= now {
                let der = self
                    .sealer
                    .open(&row.try_get::<String>("", "private_sealed")?)?;
                set.signer = Some(Signer::new(kid.clone(), alg, &der)?);
            }
            set.verifiers.insert(kid, VerifyKey { alg, key });
            published.push(jwk);
        }
        set.jwks = bytes::Bytes::from(json!({ "keys": published }).to_string());
        Ok(set)
    }

    /// Publishes a new key that starts signing after `PUBLISH_LEAD`, and
    /// schedules the current signer's retirement once its last token has
    /// expired. Returns the new kid.
    pub async fn rotate(&self, ctx: &AppContext, access_ttl: Duration) -> anyhow::Result<String> {
        let starts = now_ms() + PUBLISH_LEAD.as_millis() as i64;
        let retire = starts + access_ttl.as_millis() as i64 + 60_000;
        let db = ctx.db();
        db.orm()
            .execute_raw(db.statement(
                "UPDATE sen_signing_keys SET retire_at = ? WHERE retire_at IS NULL AND active_from <= ?",
                [retire.into(), now_ms().into()],
            ))
            .await?;
        let kid = self.insert(ctx, starts).await?;
        self.load(ctx).await?;
        Ok(kid)
    }

    /// Keeps the set fresh until `stop` resolves.
    pub async fn reload_forever(self, ctx: AppContext) {
        loop {
            tokio::time::sleep(RELOAD).await;
            if let Err(e) = self.load(&ctx).await {
                tracing::warn!(error = %e, "could not reload signing keys; keeping the current set");
            }
        }
    }

    /// Whether `kid` is published.
    pub fn knows(&self, kid: &str) -> bool {
        self.current().verifiers.contains_key(kid)
    }
}

/// What `/.well-known/jwks.json` serves, or 503 before keys are loaded.
pub fn jwks_body(ring: &KeyRing) -> Result<bytes::Bytes, AppError> {
    let set = ring.current();
    if set.jwks.is_empty() {
        return Err(AppError::unavailable(
            "signing keys",
            anyhow::anyhow!("keys not loaded"),
        ));
    }
    Ok(set.jwks.clone())
}

/// The scheduled rotation: rotates when the signing key is older than
/// `auth_key_rotation_days`, and forgets keys retired more than a day ago.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RotateKeys;

impl sen_core::jobs::Job for RotateKeys {
    const KIND: &'static str = "auth.rotate_keys";

    async fn run(self, job: sen_core::jobs::JobContext) -> Result<(), sen_core::jobs::JobError> {
        let ctx = &job.app;
        let state = match crate::state::AuthState::of(ctx) {
            Ok(s) => s,
            Err(_) => {
                let s = Arc::new(
                    crate::state::AuthState::from_config(ctx)
                        .map_err(sen_core::jobs::JobError::retry)?,
                );
                s.keys
                    .load(ctx)
                    .await
                    .map_err(sen_core::jobs::JobError::retry)?;
                s
            }
        };
        let db = ctx.db();
        let now = now_ms();
        db.orm()
            .execute_raw(db.statement(
                "DELETE FROM sen_signing_keys WHERE retire_at IS NOT NULL AND retire_at < ?",
                [(now - 86_400_000).into()],
            ))
            .await?;
        let newest: Option<i64> = db
            .orm()
            .query_one_raw(db.statement("SELECT MAX(created_at) AS c FROM sen_signing_keys", []))
            .await?
            .map(|r| r.try_get::<Option<i64>>("", "c"))
            .transpose()?
            .flatten();
        let max_age = ctx.config().auth_key_rotation_days as i64 * 86_400_000;
        if newest.is_none_or(|c| now - c >= max_age) {
            let kid = state
                .keys
                .rotate(ctx, state.access_ttl)
                .await
                .map_err(sen_core::jobs::JobError::retry)?;
            tracing::info!(kid, "signing key rotated on schedule");
        }
        Ok(())
    }
}
