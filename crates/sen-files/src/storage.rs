//! Where file bytes live, behind `object_store`'s one trait: a local
//! directory (`{data_dir}/files`, the default) or an S3-compatible bucket
//! (endpoint, region, path-style for MinIO; credentials from
//! `files_s3_access_key`/`files_s3_secret_key` or the standard `AWS_*`
//! environment), and how upload URLs for it are signed.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;

use crate::presign::{Signer, local_key};

/// The configured storage.
pub struct Storage {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// How upload URLs are signed for it.
    pub signer: Signer,
    /// For logs.
    pub describe: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The storage `config` asks for.
pub fn from_config(config: &sen_core::Config) -> anyhow::Result<Storage> {
    match &config.files_s3_bucket {
        Some(bucket) => {
            let access = config
                .files_s3_access_key
                .clone()
                .or_else(|| env("AWS_ACCESS_KEY_ID"));
            let secret = config
                .files_s3_secret_key
                .as_ref()
                .map(|s| s.expose().to_string())
                .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
            let token = env("AWS_SESSION_TOKEN");
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&config.files_s3_region)
                .with_virtual_hosted_style_request(!config.files_s3_path_style);
            if let (Some(a), Some(s)) = (&access, &secret) {
                b = b.with_access_key_id(a).with_secret_access_key(s);
            }
            let origin = match &config.files_s3_endpoint {
                Some(e) => {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                    e.trim_end_matches('/').to_string()
                }
                None => format!("https://s3.{}.amazonaws.com", config.files_s3_region),
            };
            let store = b
                .build()
                .map_err(|e| anyhow::anyhow!("S3 storage (`files_s3_bucket`): {e}"))?;
            let mut base = url::Url::parse(&origin)
                .map_err(|e| anyhow::anyhow!("`files_s3_endpoint` {origin:?}: {e}"))?;
            if config.files_s3_path_style {
                base.set_path(&format!("/{bucket}"));
            } else {
                let host = base.host_str().unwrap_or_default().to_string();
                base.set_host(Some(&format!("{bucket}.{host}")))
                    .map_err(|e| anyhow::anyhow!("bucket {bucket:?} in a host name: {e}"))?;
            }
            let signer = match (access, secret) {
                (Some(access_key), Some(secret_key)) => Signer::S3 {
                    base,
                    region: config.files_s3_region.clone(),
                    access_key,
                    secret_key,
                    session_token: token,
                },
                _ => Signer::Unavailable("presigned uploads need static S3 credentials"),
            };
            Ok(Storage {
                store: Arc::new(store),
                signer,
                describe: format!("s3 bucket {bucket}"),
            })
        }
        None => {
            let dir = config.data_dir.join("files");
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| anyhow::anyhow!("local storage {}: {e}", dir.display()))?;
            let signer = match &config.secret_key {
                Some(k) => Signer::Local {
                    key: local_key(k.expose()),
                    base: config.public_url(),
                },
                None => Signer::Unavailable("presigned uploads need SEN_SECRET_KEY"),
            };
            Ok(Storage {
                store: Arc::new(store),
                signer,
                describe: format!("directory {}", dir.display()),
            })
        }
    }
}
