//! The tables of identity and access, SQL both dialects accept. Times are
//! BIGINT milliseconds since the Unix epoch (application clock); ids are
//! UUIDv7 text.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use sen_core::migrate::Migration;

/// Creates users, identities, sessions, refresh tokens, signing keys, role
/// grants, the role catalogue and the audit log.
pub struct CreateAuthTables;

const STATEMENTS: &[&str] = &[
    "CREATE TABLE sen_users (
        id TEXT NOT NULL PRIMARY KEY,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        avatar_url TEXT,
        mood TEXT,
        password_hash TEXT,
        email_verified BOOLEAN NOT NULL DEFAULT FALSE,
        mfa_secret TEXT,
        mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE,
        mfa_last_step BIGINT NOT NULL DEFAULT 0,
        disabled_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX sen_users_email ON sen_users (email)",
    // Logins from other providers: (provider, subject) is one person there.
    "CREATE TABLE sen_identities (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        provider TEXT NOT NULL,
        subject TEXT NOT NULL,
        email TEXT,
        created_at BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX sen_identities_subject ON sen_identities (provider, subject)",
    // A session is one refresh-token family.
    "CREATE TABLE sen_sessions (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL,
        revoked_at BIGINT,
        revoked_reason TEXT,
        user_agent TEXT,
        ip TEXT
    )",
    "CREATE INDEX sen_sessions_user ON sen_sessions (user_id, created_at)",
    "CREATE TABLE sen_refresh_tokens (
        id TEXT NOT NULL PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sen_sessions (id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        used_at BIGINT
    )",
    "CREATE UNIQUE INDEX sen_refresh_tokens_hash ON sen_refresh_tokens (token_hash)",
    "CREATE INDEX sen_refresh_tokens_session ON sen_refresh_tokens (session_id)",
    // Signing keys; the private half sealed with the instance secret key.
    "CREATE TABLE sen_signing_keys (
        kid TEXT NOT NULL PRIMARY KEY,
        alg TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        private_sealed TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        active_from BIGINT NOT NULL,
        retire_at BIGINT
    )",
    "CREATE TABLE sen_user_roles (
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        scope TEXT NOT NULL DEFAULT '',
        granted_by TEXT,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (user_id, role, scope)
    )",
    // What code declares, mirrored for SQL and the admin UI.
    "CREATE TABLE sen_roles (
        name TEXT NOT NULL PRIMARY KEY,
        app TEXT NOT NULL,
        title TEXT NOT NULL,
        permissions TEXT NOT NULL,
        synced_at BIGINT NOT NULL
    )",
    "CREATE TABLE sen_audit (
        id TEXT NOT NULL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor_id TEXT,
        action TEXT NOT NULL,
        target TEXT,
        ip TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    )",
    "CREATE INDEX sen_audit_at ON sen_audit (at)",
    "CREATE INDEX sen_audit_actor ON sen_audit (actor_id, at)",
    "CREATE INDEX sen_audit_action ON sen_audit (action, at)",
];

/// Recovery codes, API keys and password-reset tokens.
pub struct CreateCredentialTables;

const CREDENTIALS: &[&str] = &[
    "CREATE TABLE sen_recovery_codes (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        used_at BIGINT
    )",
    "CREATE INDEX sen_recovery_codes_user ON sen_recovery_codes (user_id)",
    "CREATE TABLE sen_api_keys (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        last_used_at BIGINT,
        revoked_at BIGINT
    )",
    "CREATE UNIQUE INDEX sen_api_keys_hash ON sen_api_keys (key_hash)",
    "CREATE INDEX sen_api_keys_user ON sen_api_keys (user_id)",
    "CREATE TABLE sen_password_resets (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT
    )",
    "CREATE UNIQUE INDEX sen_password_resets_hash ON sen_password_resets (token_hash)",
    // Mail the auth app sent while no mail outbox exists (read by tests and the admin UI).
    "CREATE TABLE sen_auth_mail (
        id TEXT NOT NULL PRIMARY KEY,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
];

#[async_trait]
impl Migration for CreateCredentialTables {
    fn name(&self) -> &'static str {
        "0002_credentials"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in CREDENTIALS {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// The OAuth2 provider: clients, authorization codes, consents, and which
/// client a session (token family) belongs to.
pub struct CreateOAuthTables;

const OAUTH: &[&str] = &[
    "ALTER TABLE sen_sessions ADD COLUMN client_id TEXT NOT NULL DEFAULT 'sen'",
    "ALTER TABLE sen_sessions ADD COLUMN scope TEXT NOT NULL DEFAULT ''",
    "CREATE TABLE sen_oauth_clients (
        client_id TEXT NOT NULL PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        redirect_uris TEXT NOT NULL,
        confidential BOOLEAN NOT NULL,
        secret_hash TEXT,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    )",
    "CREATE TABLE sen_oauth_codes (
        code_hash TEXT NOT NULL PRIMARY KEY,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        redirect_uri TEXT NOT NULL,
        scope TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        nonce TEXT,
        auth_time BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        session_id TEXT
    )",
    "CREATE TABLE sen_oauth_consents (
        user_id TEXT NOT NULL REFERENCES sen_users (id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (user_id, client_id)
    )",
];

#[async_trait]
impl Migration for CreateOAuthTables {
    fn name(&self) -> &'static str {
        "0003_oauth"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in OAUTH {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Migration for CreateAuthTables {
    fn name(&self) -> &'static str {
        "0001_identity"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in STATEMENTS {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Drops `sen_auth_mail`: reset mail now goes through the mail outbox.
pub struct DropAuthMail;

#[async_trait]
impl Migration for DropAuthMail {
    fn name(&self) -> &'static str {
        "0005_drop_auth_mail"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("DROP TABLE sen_auth_mail").await?;
        Ok(())
    }
}

/// Indexes that let live connections find revoked credentials quickly.
pub struct IndexRevocations;

const REVOCATION_INDEXES: &[&str] = &[
    "CREATE INDEX sen_sessions_revoked ON sen_sessions (revoked_at)",
    "CREATE INDEX sen_sessions_expires ON sen_sessions (expires_at)",
    "CREATE INDEX sen_users_disabled ON sen_users (disabled_at)",
    "CREATE INDEX sen_api_keys_revoked ON sen_api_keys (revoked_at)",
    "CREATE INDEX sen_api_keys_expires ON sen_api_keys (expires_at)",
];

#[async_trait]
impl Migration for IndexRevocations {
    fn name(&self) -> &'static str {
        "0004_revocation_indexes"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in REVOCATION_INDEXES {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Impersonation: which operator (and which of their sessions) opened a
/// session on a user's behalf.
pub struct SessionImpersonator;

#[async_trait]
impl Migration for SessionImpersonator {
    fn name(&self) -> &'static str {
        "0006_session_impersonator"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("ALTER TABLE sen_sessions ADD COLUMN impersonator_id TEXT")
            .await?;
        tx.execute_unprepared("ALTER TABLE sen_sessions ADD COLUMN impersonator_session TEXT")
            .await?;
        Ok(())
    }
}

/// The operators' key list walks live keys newest first.
pub struct IndexLiveKeys;

#[async_trait]
impl Migration for IndexLiveKeys {
    fn name(&self) -> &'static str {
        "0007_live_keys"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("CREATE INDEX sen_api_keys_live ON sen_api_keys (revoked_at, id)")
            .await?;
        Ok(())
    }
}

/// The revocation indexes hold only what is revoked or disabled. Every
/// sign-in inserts a session and every sign-up a user, both with a NULL
/// there, and a full index wrote a B-tree entry (on SQLite a WAL page) for
/// each; the queries that use these indexes (`revoked_at >= ?`,
/// `disabled_at >= ?`) imply `IS NOT NULL`, so both databases still use
/// them. `sen_api_keys_revoked` goes: `sen_api_keys_live (revoked_at, id)`
/// already leads with the same column.
pub struct PartialRevocationIndexes;

const PARTIAL_REVOCATION_INDEXES: &[&str] = &[
    "DROP INDEX sen_sessions_revoked",
    "CREATE INDEX sen_sessions_revoked ON sen_sessions (revoked_at) WHERE revoked_at IS NOT NULL",
    "DROP INDEX sen_users_disabled",
    "CREATE INDEX sen_users_disabled ON sen_users (disabled_at) WHERE disabled_at IS NOT NULL",
    "DROP INDEX sen_api_keys_revoked",
];

#[async_trait]
impl Migration for PartialRevocationIndexes {
    fn name(&self) -> &'static str {
        "0008_partial_revocation_indexes"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in PARTIAL_REVOCATION_INDEXES {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Refresh tokens become MACs of (session, generation) under a key derived
/// from `SEN_SECRET_KEY` ([`crate::refresh_token`]): the session counts its
/// generations and no token needs a row. Sessions opened before this keep
/// generation 0 and their rows in `sen_refresh_tokens`, which still
/// refresh (once, into the new scheme) until they expire.
pub struct RefreshGenerations;

#[async_trait]
impl Migration for RefreshGenerations {
    fn name(&self) -> &'static str {
        "0009_refresh_generations"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared(
            "ALTER TABLE sen_sessions ADD COLUMN refresh_gen BIGINT NOT NULL DEFAULT 0",
        )
        .await?;
        Ok(())
    }
}

/// The audit log is read newest first by id (a UUIDv7, so by time), whole
/// or by actor or action; time filters bound the id too (see
/// [`crate::audit::id_floor`]). So the indexes pair actor and action with
/// the id, which returns a filtered page without sorting, and the index on
/// `at` goes: every sign-in writes one B-tree less.
pub struct AuditById;

const AUDIT_BY_ID: &[&str] = &[
    "DROP INDEX sen_audit_at",
    "DROP INDEX sen_audit_actor",
    "DROP INDEX sen_audit_action",
    "CREATE INDEX sen_audit_actor ON sen_audit (actor_id, id)",
    "CREATE INDEX sen_audit_action ON sen_audit (action, id)",
];

#[async_trait]
impl Migration for AuditById {
    fn name(&self) -> &'static str {
        "0010_audit_by_id"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in AUDIT_BY_ID {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
