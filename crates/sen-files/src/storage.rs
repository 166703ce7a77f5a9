//! Where file bytes live, behind `object_store`'s one trait: a local
//! directory (`{data_dir}/files`, the default) or an S3-compatible bucket
//! (endpoint, region, path-style for MinIO; credentials from the standard
//! `AWS_*` environment variables, never from `sen.toml`).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;

/// The store `config` asks for.
pub fn from_config(config: &sen_core::Config) -> anyhow::Result<(Arc<dyn ObjectStore>, String)> {
    match &config.files_s3_bucket {
        Some(bucket) => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&config.files_s3_region)
                .with_virtual_hosted_style_request(!config.files_s3_path_style);
            if let Some(e) = &config.files_s3_endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            }
            let store = b
                .build()
                .map_err(|e| anyhow::anyhow!("S3 storage (`files_s3_bucket`): {e}"))?;
            Ok((Arc::new(store), format!("s3 bucket {bucket}")))
        }
        None => {
            let dir = config.data_dir.join("files");
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| anyhow::anyhow!("local storage {}: {e}", dir.display()))?;
            Ok((Arc::new(store), format!("directory {}", dir.display())))
        }
    }
}
