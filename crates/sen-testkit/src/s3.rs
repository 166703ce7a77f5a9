//! An S3-compatible server on 127.0.0.1 for file tests: `s3s` (the S3
//! protocol, with SigV4 checks of headers and presigned URLs) over
//! `s3s-fs` (objects as files in a temporary directory), served in-process
//! on a real socket with one access key.

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// The access key every test server accepts.
pub const ACCESS_KEY: &str = "sen-test-access";
/// Its secret.
pub const SECRET_KEY: &str = "sen-test-secret-0123456789";

/// A running server; stopped when dropped.
pub struct S3Server {
    port: u16,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Starts a server with one empty bucket, `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let root = tempfile::tempdir().expect("s3 root");
        std::fs::create_dir_all(root.path().join(bucket)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind s3");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self { port, root, task }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where `bucket/key` is kept on disk (to check what was stored).
    pub fn path_of(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// Every object file under `bucket` (s3s-fs keeps upload state in
    /// hidden files; those are skipped).
    pub fn objects(&self, bucket: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if p.is_dir() {
                    walk(&p, out);
                } else if !hidden {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.path().join(bucket), &mut out);
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
