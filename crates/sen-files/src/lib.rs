//! Sen's files: storage in a local directory or an S3-compatible bucket
//! (`object_store`), uploads streamed from `multipart/form-data` with the
//! type sniffed from the bytes and limits per purpose, a scan hook before a
//! file becomes visible, downloads that check access with ETag and Range,
//! thumbnails by a worker job, and the avatar of `/me`.
//!
//! Invariants: a file is served only when `ready` and readable by the
//! caller (others get 404); a client's name or type is never trusted (the
//! name is sanitised and never a storage path, the type is sniffed); a
//! rejected upload leaves neither bytes nor a row; memory per upload is
//! bounded whatever the file's size.

pub mod direct;
pub mod download;
pub mod names;
pub mod presign;
pub mod records;
pub mod routes;
pub mod storage;
pub mod thumbnails;
pub mod upload;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use object_store::ObjectStore;
use sen_core::files::{FilePurpose, IMAGE_TYPES};
use sen_core::jobs::{JobHandler, NewJob, Schedule};
use sen_core::migrate::Migration;
use sen_core::rbac::PermissionDecl;
use sen_core::{App, AppContext, AppError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use records::FileRow;

/// The avatar purpose (`PUT /api/v1/me/avatar`).
pub const AVATAR: &str = "avatar";

/// Looks at a stored upload before it becomes visible (a virus scanner,
/// a moderation check). `Err(reason)` rejects it: the bytes are deleted
/// and the client gets 422 `file_rejected` with the reason.
pub trait Scanner: Send + Sync + 'static {
    /// Checks `file`, whose bytes are at `file.original_key()` in `store`.
    fn scan<'a>(
        &'a self,
        ctx: &'a AppContext,
        store: &'a Arc<dyn ObjectStore>,
        file: &'a FileRow,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The default scanner: accepts everything.
pub struct NoScan;

impl Scanner for NoScan {
    fn scan<'a>(
        &'a self,
        _: &'a AppContext,
        _: &'a Arc<dyn ObjectStore>,
        _: &'a FileRow,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the files app shares, built at start-up.
pub struct FilesState {
    /// Where bytes live.
    pub store: Arc<dyn ObjectStore>,
    /// Every app's purposes by name.
    purposes: HashMap<&'static str, FilePurpose>,
    /// The scan hook.
    pub scanner: Arc<dyn Scanner>,
    /// How upload URLs are signed.
    pub signer: presign::Signer,
}

impl FilesState {
    /// The state the `files` app attached at start-up.
    pub fn of(ctx: &AppContext) -> Result<Arc<Self>, AppError> {
        ctx.extension::<Self>().ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "the files app is not started in this process"
            ))
        })
    }

    /// The purpose named `name`.
    pub fn purpose(&self, name: &str) -> Option<FilePurpose> {
        self.purposes.get(name).cloned()
    }

    /// Every purpose's name, sorted.
    pub fn purpose_names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.purposes.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// The built-in `files` app.
pub struct FilesApp {
    scanner: Arc<dyn Scanner>,
}

impl Default for FilesApp {
    fn default() -> Self {
        Self {
            scanner: Arc::new(NoScan),
        }
    }
}

impl FilesApp {
    /// The files app with a scan hook.
    pub fn with_scanner(scanner: impl Scanner) -> Self {
        Self {
            scanner: Arc::new(scanner),
        }
    }
}

impl App for FilesApp {
    fn name(&self) -> &'static str {
        "files"
    }

    fn title(&self) -> &'static str {
        "Files"
    }

    fn description(&self) -> &'static str {
        "Uploads, images and their thumbnails, and avatars."
    }

    fn icon(&self) -> &'static str {
        "file"
    }

    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        vec![Box::new(records::CreateFileTables)]
    }

    fn permissions(&self) -> Vec<PermissionDecl> {
        vec![
            PermissionDecl::read("read", "See and download every user's files"),
            PermissionDecl::write("write", "Delete any user's files"),
        ]
    }

    fn file_purposes(&self) -> Vec<FilePurpose> {
        // `attachment`'s limit comes from the configuration at start-up.
        vec![
            FilePurpose {
                name: "attachment",
                max_bytes: 0,
                allowed_types: &[],
                public: false,
                thumbnails: false,
            },
            FilePurpose {
                name: "image",
                max_bytes: 0,
                allowed_types: IMAGE_TYPES,
                public: true,
                thumbnails: true,
            },
            FilePurpose {
                name: AVATAR,
                max_bytes: 5 * 1024 * 1024,
                allowed_types: IMAGE_TYPES,
                public: true,
                thumbnails: true,
            },
        ]
    }

    fn jobs(&self) -> Vec<JobHandler> {
        vec![
            JobHandler::of::<thumbnails::MakeThumbnails>(),
            JobHandler::of::<thumbnails::CleanupPending>(),
        ]
    }

    fn schedules(&self) -> Vec<Schedule> {
        match NewJob::of(&thumbnails::CleanupPending) {
            Ok(job) => vec![Schedule::new("files.cleanup", "0 */10 * * * *", job)],
            Err(_) => Vec::new(),
        }
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .routes(routes!(routes::upload, routes::list_files))
            .routes(routes!(routes::get_file, routes::delete_file))
            .routes(routes!(
                routes::put_avatar,
                routes::get_avatar,
                routes::delete_avatar
            ))
            .routes(routes!(download::download))
            .routes(routes!(direct::create_upload))
            .routes(routes!(direct::put_local))
            .routes(routes!(direct::complete))
    }

    fn start<'a>(&'a self, ctx: &'a AppContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let storage = storage::from_config(ctx.config())?;
            let mut purposes = HashMap::new();
            for app in ctx.apps().iter() {
                for mut p in app.file_purposes() {
                    if p.max_bytes == 0 {
                        p.max_bytes = ctx.config().files_max_bytes;
                    }
                    if purposes.insert(p.name, p).is_some() {
                        anyhow::bail!("two apps declare the file purpose `{}`", app.name());
                    }
                }
            }
            tracing::debug!(storage = %storage.describe, "files ready");
            ctx.insert_extension(Arc::new(FilesState {
                store: storage.store,
                purposes,
                scanner: self.scanner.clone(),
                signer: storage.signer,
            }));
            Ok(())
        })
    }
}
