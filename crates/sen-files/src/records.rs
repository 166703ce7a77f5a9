//! The `sen_files` rows: one per upload, `pending` while its bytes stream
//! in, `ready` once stored and checked, with the thumbnails made of it.
//! Who may read one is decided here, in one place.

use sea_orm::{ConnectionTrait, QueryResult};
use sen_core::{AppContext, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Reading any user's private files.
pub const READ: &str = "files:read";
/// Deleting any user's files.
pub const WRITE: &str = "files:write";

/// One stored thumbnail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Thumb {
    /// Width asked for (the longer side is at most this).
    pub size: u32,
    /// Real width.
    pub width: u32,
    /// Real height.
    pub height: u32,
    /// Bytes.
    pub bytes: u64,
    /// `image/jpeg` or `image/webp`.
    #[serde(default = "jpeg")]
    pub content_type: String,
}

fn jpeg() -> String {
    "image/jpeg".into()
}

/// A file as stored.
#[derive(Debug, Clone)]
pub struct FileRow {
    /// UUIDv7.
    pub id: String,
    /// Who uploaded it.
    pub owner_id: String,
    /// The purpose it was uploaded for.
    pub purpose: String,
    /// Sanitised name.
    pub name: String,
    /// Sniffed type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 hex of the bytes (the ETag).
    pub sha256: String,
    /// `pending`, `ready` or `rejected`.
    pub state: String,
    /// Served to anyone with the link.
    pub public: bool,
    /// Upload time (ms since the epoch).
    pub created_at: i64,
    /// Thumbnails made so far.
    pub thumbnails: Vec<Thumb>,
    /// Why it was rejected, when it was.
    pub error: Option<String>,
}

/// The columns [`FileRow::from_row`] reads.
pub const COLUMNS: &str = "id, owner_id, purpose, name, content_type, size, sha256, state, public, created_at, thumbnails, error";

impl FileRow {
    /// Reads a row selected with [`COLUMNS`].
    pub fn from_row(r: &QueryResult) -> Result<Self, sea_orm::DbErr> {
        let thumbs: String = r.try_get("", "thumbnails")?;
        Ok(Self {
            id: r.try_get("", "id")?,
            owner_id: r.try_get("", "owner_id")?,
            purpose: r.try_get("", "purpose")?,
            name: r.try_get("", "name")?,
            content_type: r.try_get("", "content_type")?,
            size: r.try_get("", "size")?,
            sha256: r.try_get("", "sha256")?,
            state: r.try_get("", "state")?,
            public: r.try_get("", "public")?,
            created_at: r.try_get("", "created_at")?,
            thumbnails: serde_json::from_str(&thumbs).unwrap_or_default(),
            error: r.try_get("", "error")?,
        })
    }

    /// The row `id`, in any state.
    pub async fn load(ctx: &AppContext, id: &str) -> Result<Option<Self>, sea_orm::DbErr> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let db = ctx.db();
        db.orm()
            .query_one_raw(db.statement(
                &format!("SELECT {COLUMNS} FROM sen_files WHERE id = ?"),
                [id.into()],
            ))
            .await?
            .map(|r| Self::from_row(&r))
            .transpose()
    }

    /// Whether `who` may read this file: ready, and public, or theirs, or
    /// they hold `files:read`.
    pub fn readable_by(&self, who: Option<&Principal>) -> bool {
        self.state == "ready"
            && (self.public || who.is_some_and(|p| p.user_id == self.owner_id || p.has(READ)))
    }

    /// Storage key of the original.
    pub fn original_key(&self) -> object_store::path::Path {
        original_key(&self.id)
    }

    /// The download path (`/files/{id}/{name}`), percent-encoded.
    pub fn url(&self) -> String {
        format!("/files/{}/{}", self.id, encode_segment(&self.name))
    }
}

/// Storage key of file `id`'s original.
pub fn original_key(id: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("{id}/original"))
}

/// Storage key of file `id`'s thumbnail of `size` in `content_type`.
pub fn thumb_key(id: &str, size: u32, content_type: &str) -> object_store::path::Path {
    let ext = if content_type == "image/webp" {
        "webp"
    } else {
        "jpg"
    };
    object_store::path::Path::from(format!("{id}/thumb-{size}.{ext}"))
}

/// Percent-encodes one URL path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates `sen_files` and `sen_avatars` (`files` migration `0001_files`).
pub struct CreateFileTables;

#[async_trait::async_trait]
impl sen_core::migrate::Migration for CreateFileTables {
    fn name(&self) -> &'static str {
        "0001_files"
    }

    async fn up(&self, tx: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        for sql in [
            "CREATE TABLE sen_files (
                id TEXT NOT NULL PRIMARY KEY,
                owner_id TEXT NOT NULL,
                purpose TEXT NOT NULL,
                name TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                sha256 TEXT NOT NULL,
                state TEXT NOT NULL,
                public BOOLEAN NOT NULL,
                thumbnails TEXT NOT NULL DEFAULT '[]',
                error TEXT,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX sen_files_owner ON sen_files (owner_id, id)",
            "CREATE INDEX sen_files_pending ON sen_files (created_at) WHERE state = 'pending'",
            // One avatar per user (the users table belongs to the auth app).
            "CREATE TABLE sen_avatars (
                user_id TEXT NOT NULL PRIMARY KEY,
                file_id TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
        ] {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
