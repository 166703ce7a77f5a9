//! Files on local storage through the real router, on both databases:
//! streamed upload, sniffed types, sanitised names, limits and bad input
//! that store nothing, access-checked downloads with ETag and Range,
//! thumbnails by the worker with no EXIF, the pixel limit, the scan hook,
//! and the avatar of `/me`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use sea_orm::ConnectionTrait;
use sen_testkit::{TestApp, assert_problem};
use serde_json::{Value, json};

const PW: &str = "a long pass phrase";

async fn spawn(backend: sen_testkit::Backend) -> TestApp {
    spawn_with(backend, 200 * 1024, 40_000_000).await
}

async fn spawn_with(backend: sen_testkit::Backend, max_bytes: u64, max_pixels: u64) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(move |c| {
            c.files_max_bytes = max_bytes;
            c.files_max_pixels = max_pixels;
            c.job_poll_ms = 50;
        })
        .workers()
        .spawn()
        .await
}

async fn user(app: &TestApp, email: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": PW, "name": "U"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    common::login_token(app, email, PW).await
}

async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    method: Method,
    bytes: Vec<u8>,
    name: &str,
    claimed_type: &str,
) -> reqwest::Response {
    let part = Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(claimed_type)
        .unwrap();
    app.request(method, path)
        .bearer_auth(token)
        .multipart(Form::new().text("note", "ignored").part("file", part))
        .send()
        .await
        .unwrap()
}

/// Rows in `sen_files` and objects under `{data_dir}/files`.
async fn stored(app: &TestApp) -> (i64, usize) {
    let db = app.ctx.db();
    let rows: i64 = db
        .orm()
        .query_one_raw(db.statement("SELECT COUNT(*) AS n FROM sen_files", []))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    (
        rows,
        walk_names(&app.ctx.config().data_dir.join("files")).len(),
    )
}

fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    // An APP1 EXIF segment right after SOI, with a GPS-ish marker string.
    let payload = b"Exif\0\0MM\0*\0\0\0\x08GPS-SECRET-LOCATION";
    let len = (payload.len() + 2) as u16;
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(payload);
    out.splice(2..2, seg);
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 200, 10]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn private_files_roundtrip_with_etag_and_range(app: TestApp) {
    let ann = user(&app, "ann@example.com").await;
    let bo = user(&app, "bo@example.com").await;
    let data: Vec<u8> = (0..150_000u32)
        .map(|i| b"abcdefghij\n"[(i % 11) as usize])
        .collect();
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        data.clone(),
        "../../etc/pass\"wd.txt",
        "image/png",
    )
    .await;
    assert_eq!(r.status(), 201);
    let f: Value = r.json().await.unwrap();
    assert_eq!(f["name"], "pass_wd.txt", "path and quote removed");
    assert_eq!(
        f["content_type"], "text/plain",
        "sniffed, not the claimed image/png"
    );
    assert_eq!(f["size"], 150_000);
    assert_eq!(f["public"], false);
    let id = f["id"].as_str().unwrap().to_string();
    let url = f["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/files/{id}/pass_wd.txt"));

    let get = |path: String, token: Option<String>| {
        let app = &app;
        async move {
            let mut r = app.request(Method::GET, &path);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap()
        }
    };
    assert_eq!(
        get(format!("/api/v1/files/{id}"), Some(ann.clone()))
            .await
            .status(),
        200
    );
    for who in [Some(bo.clone()), None] {
        assert_problem(
            get(format!("/api/v1/files/{id}"), who.clone()).await,
            404,
            "not_found",
        )
        .await;
        assert_problem(get(url.clone(), who).await, 404, "not_found").await;
    }

    let r = get(url.clone(), Some(ann.clone())).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&ann)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&ann)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/150000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);
    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&ann)
        .header("Range", "bytes=150000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */150000");

    let mine: Value = get("/api/v1/files".into(), Some(ann.clone()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs: Value = get("/api/v1/files".into(), Some(bo.clone()))
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());
    assert_problem(
        get("/api/v1/files?owner=all".into(), Some(bo.clone())).await,
        403,
        "forbidden",
    )
    .await;

    let del = |token: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.request(Method::DELETE, &format!("/api/v1/files/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_problem(del(bo.clone()).await, 404, "not_found").await;
    assert_eq!(stored(&app).await, (1, 1));
    assert_eq!(del(ann.clone()).await.status(), 204);
    assert_problem(get(url, Some(ann.clone())).await, 404, "not_found").await;
    assert_eq!(stored(&app).await, (0, 0), "row and bytes gone");

    // An operator (files:write) may delete anyone's file, and that is in
    // the audit log with who, whose and what; an owner's own deletion is not.
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        b"second".to_vec(),
        "b.txt",
        "text/plain",
    )
    .await;
    let second = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = common::owner_token(&app).await;
    let r = app
        .request(Method::DELETE, &format!("/api/v1/files/{second}"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(stored(&app).await, (0, 0));
    let audit = |target: String| {
        let (app, owner) = (&app, owner.clone());
        async move {
            let path = format!("/api/v1/admin/audit?action=file.delete&target={target}");
            let page = common::get_json(app, &path, &owner).await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let entries = audit(second).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let ann_id = common::get_json(&app, "/api/v1/me", &ann).await["id"].clone();
    let owner_id = common::get_json(&app, "/api/v1/me", &owner).await["id"].clone();
    assert_eq!(entries[0]["actor_id"], owner_id);
    assert_eq!(entries[0]["detail"]["owner_id"], ann_id);
    assert_eq!(entries[0]["detail"]["size"], 6);
    assert!(audit(id).await.is_empty(), "own deletion not audited");
}

async fn bad_uploads_store_nothing(app: TestApp) {
    let ann = user(&app, "ann@example.com").await;
    // Over the 200 KiB attachment limit, and far bigger than the socket
    // buffers: the client is still writing when the server refuses, and
    // must get to read the 413 (the server reads the rest out).
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        vec![b'a'; 8 * 1024 * 1024],
        "big.txt",
        "text/plain",
    )
    .await;
    assert_problem(r, 413, "file_too_large").await;
    // A PDF is not an image, whatever the client says.
    let r = upload(
        &app,
        &ann,
        "/api/v1/files?purpose=image",
        Method::POST,
        b"%PDF-1.7\n%%EOF\n".to_vec(),
        "x.png",
        "image/png",
    )
    .await;
    assert_problem(r, 415, "unsupported_file_type").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/files?purpose=nope",
        Method::POST,
        b"x".to_vec(),
        "x",
        "text/plain",
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        Vec::new(),
        "empty.txt",
        "text/plain",
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        b"X5O!P%@AP EICAR-STANDARD-TEST".to_vec(),
        "v.txt",
        "text/plain",
    )
    .await;
    let body = assert_problem(r, 422, "file_rejected").await;
    assert!(body["detail"].as_str().unwrap().contains("EICAR"));
    // Not multipart at all.
    let r = app
        .request(Method::POST, "/api/v1/files")
        .bearer_auth(&ann)
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
    // Truncated: the closing boundary never comes.
    let mut body = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.txt\"\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'q', 20_000));
    let r = app
        .request(Method::POST, "/api/v1/files")
        .bearer_auth(&ann)
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_multipart").await;
    // Without a `file` part.
    let r = app
        .request(Method::POST, "/api/v1/files")
        .bearer_auth(&ann)
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "validation_failed").await;
    let r = app
        .request(Method::POST, "/api/v1/files")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        stored(&app).await,
        (0, 0),
        "nothing stored by any rejected upload"
    );
}

async fn wait_thumbs(app: &TestApp, token: &str, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = common::get_json(app, &format!("/api/v1/files/{id}"), token).await;
        if f["thumbnails"].as_array().unwrap().len() >= n {
            return f;
        }
        assert!(Instant::now() < deadline, "no thumbnails: {f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn images_get_thumbnails_without_exif(app: TestApp) {
    let ann = user(&app, "ann@example.com").await;
    let original = jpeg_with_exif(640, 480);
    assert!(original.windows(10).any(|w| w == b"GPS-SECRET"));
    let r = upload(
        &app,
        &ann,
        "/api/v1/files?purpose=image",
        Method::POST,
        original.clone(),
        "photo.jpg",
        "application/octet-stream",
    )
    .await;
    assert_eq!(r.status(), 201);
    let f: Value = r.json().await.unwrap();
    assert_eq!(f["content_type"], "image/jpeg");
    assert_eq!(f["public"], true);
    let id = f["id"].as_str().unwrap().to_string();
    let f = wait_thumbs(&app, &ann, &id, 2).await;
    let t = &f["thumbnails"][0];
    assert_eq!(
        (
            t["size"].as_u64(),
            t["width"].as_u64(),
            t["height"].as_u64()
        ),
        (Some(128), Some(128), Some(96))
    );
    // Public: anyone may fetch it, and caches may keep it.
    let r = app.get(t["url"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    let thumb = r.bytes().await.unwrap();
    assert!(!thumb.windows(4).any(|w| w == b"Exif"), "EXIF stripped");
    assert!(!thumb.windows(10).any(|w| w == b"GPS-SECRET"));
    let decoded = image::load_from_memory(&thumb).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (128, 96));
    let r = app
        .get(&format!("{}?thumb=999", f["url"].as_str().unwrap()))
        .await;
    assert_problem(r, 404, "not_found").await;
}

async fn oversized_images_are_refused_as_bombs(backend: sen_testkit::Backend) {
    let app = spawn_with(backend, 2 * 1024 * 1024, 100_000).await;
    let ann = user(&app, "ann@example.com").await;
    // 1000 × 1000 pixels of one colour compress to a few KB: a small bomb.
    let bomb = png(1000, 1000);
    assert!(bomb.len() < 50_000);
    let r = upload(
        &app,
        &ann,
        "/api/v1/files?purpose=image",
        Method::POST,
        bomb,
        "b.png",
        "image/png",
    )
    .await;
    assert_problem(r, 422, "image_too_large").await;
    assert_eq!(stored(&app).await, (0, 0));
}

async fn avatar_replaces_and_removes(app: TestApp) {
    let ann = user(&app, "ann@example.com").await;
    let bo = user(&app, "bo@example.com").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/me/avatar",
        Method::PUT,
        png(300, 300),
        "me.png",
        "image/png",
    )
    .await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap().to_string();
    let me: Value = app
        .request(Method::GET, "/api/v1/me/avatar")
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], first_id.as_str());
    wait_thumbs(&app, &ann, &first_id, 2).await;
    let r = app
        .request(Method::GET, "/api/v1/me/avatar")
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/me/avatar",
        Method::PUT,
        b"just text".to_vec(),
        "me.png",
        "image/png",
    )
    .await;
    assert_problem(r, 415, "unsupported_file_type").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/me/avatar",
        Method::PUT,
        jpeg_with_exif(64, 64),
        "new.jpg",
        "image/jpeg",
    )
    .await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["id"], first["id"]);
    let r = app.get(first["url"].as_str().unwrap()).await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .request(Method::DELETE, "/api/v1/me/avatar")
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .request(Method::GET, "/api/v1/me/avatar")
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    // Thumbnail jobs of deleted files find nothing to do (or clean up
    // what they made); wait until none is left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let db = app.ctx.db();
        let live: i64 = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT COUNT(*) AS n FROM sen_jobs WHERE kind = 'files.thumbnails' AND state NOT IN ('completed', 'dead', 'cancelled')",
                [],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if live == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "thumbnail jobs never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows, objects) = stored(&app).await;
    assert_eq!(rows, 0);
    assert_eq!(objects, 0, "old avatars' bytes and thumbnails deleted");
}

sen_testkit::both_backends!(spawn;
    private_files_roundtrip_with_etag_and_range,
    bad_uploads_store_nothing,
    images_get_thumbnails_without_exif,
    avatar_replaces_and_removes,
    presigned_uploads_on_local_storage,
    cleanup_removes_abandoned_uploads,
);

mod bombs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::oversized_images_are_refused_as_bombs(sen_testkit::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::oversized_images_are_refused_as_bombs(sen_testkit::Backend::Postgres).await
    }
}

async fn ticket(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/files/uploads")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn put_to(url: &str, content_type: &str, bytes: Vec<u8>) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(url)
        .header("Content-Type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn complete(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/v1/files/{id}/complete"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The presigned flow against whatever storage `app` has: the signature
/// binds size and type, completion checks the bytes, and a lie about the
/// type leaves nothing behind.
async fn presigned_upload_flow(app: &TestApp, objects: impl Fn() -> usize) {
    let ann = user(app, "ann@example.com").await;
    let bo = user(app, "bo@example.com").await;
    let img = png(200, 100);
    let r = ticket(app, &ann, json!({"name": "../x/pic.png", "content_type": "image/png", "size": img.len(), "purpose": "image"})).await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["file_id"].as_str().unwrap().to_string();
    let url = t["upload_url"].as_str().unwrap().to_string();
    assert_eq!(t["method"], "PUT");
    assert_eq!(t["headers"]["Content-Type"], "image/png");
    assert_eq!(t["headers"]["Content-Length"], img.len().to_string());
    // Completing before the bytes arrive.
    assert_problem(complete(app, &ann, &id).await, 409, "upload_missing").await;
    // Another type, or another size, than signed: refused by the storage.
    let r = put_to(&url, "image/jpeg", img.clone()).await;
    assert_eq!(r.status(), 403, "type is bound into the signature");
    let mut longer = img.clone();
    longer.extend_from_slice(b"extra");
    let r = put_to(&url, "image/png", longer).await;
    assert_eq!(r.status(), 403, "size is bound into the signature");
    let tampered = url
        .replace("Expires=900", "Expires=9000")
        .replace("expires=", "expires=1");
    assert_ne!(tampered, url);
    assert_eq!(
        put_to(&tampered, "image/png", img.clone()).await.status(),
        403
    );
    assert_eq!(objects(), 0, "nothing stored by refused PUTs");
    let r = put_to(&url, "image/png", img.clone()).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_problem(complete(app, &bo, &id).await, 404, "not_found").await;
    let r = complete(app, &ann, &id).await;
    assert_eq!(r.status(), 200);
    let f: Value = r.json().await.unwrap();
    assert_eq!(f["name"], "pic.png");
    assert_eq!(f["content_type"], "image/png");
    assert_problem(complete(app, &ann, &id).await, 404, "not_found").await;
    let f = wait_thumbs(app, &ann, &id, 2).await;
    let r = app.get(f["url"].as_str().unwrap()).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), &img[..]);

    // Declared PNG, sent a PDF (with the signed type and size): refused at
    // completion, bytes and row removed.
    let pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
    let r = ticket(app, &ann, json!({"name": "fake.png", "content_type": "image/png", "size": pdf.len(), "purpose": "image"})).await;
    let t: Value = r.json().await.unwrap();
    let fake = t["file_id"].as_str().unwrap().to_string();
    let before = objects();
    let r = put_to(t["upload_url"].as_str().unwrap(), "image/png", pdf).await;
    assert!(r.status().is_success());
    assert_eq!(objects(), before + 1);
    assert_problem(
        complete(app, &ann, &fake).await,
        415,
        "unsupported_file_type",
    )
    .await;
    assert_eq!(objects(), before, "the lie's bytes are deleted");
    let r = app
        .request(Method::GET, &format!("/api/v1/files/{fake}"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;

    // Bad tickets.
    let r = ticket(app, &ann, json!({"name": "a", "content_type": "image/png", "size": 10_000_000_000u64, "purpose": "image"})).await;
    assert_problem(r, 413, "file_too_large").await;
    let r = ticket(
        app,
        &ann,
        json!({"name": "a", "content_type": "application/pdf", "size": 10, "purpose": "image"}),
    )
    .await;
    assert_problem(r, 415, "unsupported_file_type").await;
    let r = ticket(
        app,
        &ann,
        json!({"name": "a", "content_type": "bad", "size": 0}),
    )
    .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}

async fn presigned_uploads_on_local_storage(app: TestApp) {
    let dir = app.ctx.config().data_dir.join("files");
    presigned_upload_flow(&app, || {
        // Originals only: thumbnails are made apart.
        walk_names(&dir)
            .iter()
            .filter(|n| !n.starts_with("thumb-"))
            .count()
    })
    .await;
}

fn walk_names(d: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_names(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

async fn spawn_s3(backend: sen_testkit::Backend, s3: &sen_testkit::s3::S3Server) -> TestApp {
    let endpoint = s3.endpoint();
    TestApp::builder(backend)
        .apps(common::apps())
        .config(move |c| {
            c.files_s3_bucket = Some("sen-test".into());
            c.files_s3_endpoint = Some(endpoint);
            c.files_s3_path_style = true;
            c.files_s3_access_key = Some(sen_testkit::s3::ACCESS_KEY.into());
            c.files_s3_secret_key =
                Some(sen_core::config::Secret::new(sen_testkit::s3::SECRET_KEY));
            c.files_max_bytes = 2 * 1024 * 1024;
            c.job_poll_ms = 50;
        })
        .workers()
        .spawn()
        .await
}

async fn s3_storage_streams_checks_and_deletes(backend: sen_testkit::Backend) {
    let s3 = sen_testkit::s3::S3Server::start("sen-test").await;
    let app = spawn_s3(backend, &s3).await;
    let ann = user(&app, "ann@example.com").await;
    let bo = user(&app, "bo@example.com").await;
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        data.clone(),
        "blob.bin",
        "text/plain",
    )
    .await;
    assert_eq!(r.status(), 201);
    let f: Value = r.json().await.unwrap();
    let id = f["id"].as_str().unwrap().to_string();
    assert_eq!(f["content_type"], "application/octet-stream");
    let on_disk = std::fs::read(s3.path_of("sen-test", &format!("{id}/original"))).unwrap();
    assert_eq!(on_disk, data, "the bucket holds the bytes");
    let url = f["url"].as_str().unwrap().to_string();
    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&ann)
        .header("Range", "bytes=1000000-1000099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &data[1_000_000..1_000_100]
    );
    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    let r = app
        .request(Method::GET, &url)
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
    // Oversized (and bigger than the socket buffers, so the client is
    // mid-write when refused): a readable 413, nothing left in the bucket.
    let r = upload(
        &app,
        &ann,
        "/api/v1/files",
        Method::POST,
        vec![7u8; 16 * 1024 * 1024],
        "big.bin",
        "x/y",
    )
    .await;
    assert_problem(r, 413, "file_too_large").await;
    assert_eq!(s3.objects("sen-test").len(), 1);
    let r = app
        .request(Method::DELETE, &format!("/api/v1/files/{id}"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(s3.objects("sen-test").is_empty(), "deleted from the bucket");
}

async fn s3_presigned_uploads(backend: sen_testkit::Backend) {
    let s3 = sen_testkit::s3::S3Server::start("sen-test").await;
    let app = spawn_s3(backend, &s3).await;
    presigned_upload_flow(&app, || {
        s3.objects("sen-test")
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "original"))
            .count()
    })
    .await;
}

mod s3 {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_streams_checks_and_deletes() {
        super::s3_storage_streams_checks_and_deletes(sen_testkit::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_streams_checks_and_deletes() {
        super::s3_storage_streams_checks_and_deletes(sen_testkit::Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_presigned_uploads() {
        super::s3_presigned_uploads(sen_testkit::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_presigned_uploads() {
        super::s3_presigned_uploads(sen_testkit::Backend::Postgres).await
    }
}

/// Uploads a crash cut off stay `pending`; the cleanup schedule removes
/// those older than an hour with their bytes, and leaves recent ones.
async fn cleanup_removes_abandoned_uploads(app: TestApp) {
    use object_store::ObjectStoreExt;
    let owner = common::owner_token(&app).await;
    let state = sen_files::FilesState::of(&app.ctx).unwrap();
    let db = app.ctx.db();
    let now = sen_core::clock::now().timestamp_millis();
    let old = uuid::Uuid::now_v7().to_string();
    let fresh = uuid::Uuid::now_v7().to_string();
    for (id, at) in [(&old, now - 2 * 3_600_000), (&fresh, now)] {
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO sen_files (id, owner_id, purpose, name, content_type, size, sha256, state, public, created_at)
                 VALUES (?, 'u', 'attachment', 'x', 'text/plain', 3, '', 'pending', ?, ?)",
                [id.clone().into(), false.into(), at.into()],
            ))
            .await
            .unwrap();
        state
            .store
            .put(
                &sen_files::records::original_key(id),
                b"abc".to_vec().into(),
            )
            .await
            .unwrap();
    }
    assert_eq!(stored(&app).await, (2, 2));
    let r = app
        .request(Method::POST, "/api/v1/admin/schedules/files.cleanup/run")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored(&app).await != (1, 1) {
        assert!(
            Instant::now() < deadline,
            "cleanup left {:?}",
            stored(&app).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: String = db
        .orm()
        .query_one_raw(db.statement("SELECT id FROM sen_files", []))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    assert_eq!(left, fresh);
}

/// `files_thumbnail_format = "webp"` makes lossless WebP thumbnails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webp_thumbnails_when_configured() {
    let app = TestApp::builder(sen_testkit::Backend::Sqlite)
        .apps(common::apps())
        .config(|c| {
            c.files_thumbnail_format = "webp".into();
            c.job_poll_ms = 50;
        })
        .workers()
        .spawn()
        .await;
    let ann = user(&app, "ann@example.com").await;
    let r = upload(
        &app,
        &ann,
        "/api/v1/files?purpose=image",
        Method::POST,
        png(300, 150),
        "p.png",
        "image/png",
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let f = wait_thumbs(&app, &ann, &id, 2).await;
    let r = app.get(f["thumbnails"][0]["url"].as_str().unwrap()).await;
    assert_eq!(r.headers()["content-type"], "image/webp");
    let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (128, 64));
}
