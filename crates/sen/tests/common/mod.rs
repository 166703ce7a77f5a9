//! A custom app the tests register exactly as a user would, with endpoints
//! that exercise each error class and the backing services.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod procs;

/// A scan hook that rejects files containing `EICAR` (the test kit's
/// stand-in for a virus scanner).
pub mod common_scanner {
    use std::sync::Arc;

    use object_store::{ObjectStore, ObjectStoreExt};

    pub struct RejectEicar;

    impl sen_files::Scanner for RejectEicar {
        fn scan<'a>(
            &'a self,
            _: &'a sen_core::AppContext,
            store: &'a Arc<dyn ObjectStore>,
            file: &'a sen_files::FileRow,
        ) -> futures::future::BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                let bytes = store
                    .get(&file.original_key())
                    .await
                    .map_err(|e| e.to_string())?
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())?;
                if bytes.windows(5).any(|w| w == b"EICAR") {
                    Err("malware signature EICAR found".into())
                } else {
                    Ok(())
                }
            })
        }
    }
}
pub mod rt;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use sen_core::extract::{Json, Query, Valid};
use sen_core::{App, AppContext, AppError, AppResult, Apps};
use sen_testkit::{Backend, TestApp};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

/// The probe app.
pub struct Probe;

impl App for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn title(&self) -> &'static str {
        "Probe"
    }
    fn description(&self) -> &'static str {
        "Test endpoints"
    }
    fn permissions(&self) -> Vec<sen_core::rbac::PermissionDecl> {
        vec![
            sen_core::rbac::PermissionDecl::read("reports.read", "Read a region's report"),
            sen_core::rbac::PermissionDecl::write("reports.write", "Change a region's report"),
        ]
    }
    fn migrations(&self) -> Vec<Box<dyn sen_core::migrate::Migration>> {
        vec![Box::new(ProbeTables)]
    }
    fn admin_pages(&self) -> Vec<sen_core::resource::Resource> {
        use sen_core::resource::{Field, Resource};
        vec![
            Resource::new("widgets", "Widgets", "probe_widgets")
                .permissions("probe:reports.read", "probe:reports.write")
                .field(
                    Field::text("name", "Name", 40)
                        .required()
                        .search()
                        .sortable(),
                )
                .field(
                    Field::integer("qty", "Quantity", 0, 1000)
                        .required()
                        .sortable(),
                )
                .field(Field::boolean("active", "Active").filter())
                .field(Field::choice("colour", "Colour", &["red", "blue"]).filter())
                .field(Field::email("contact", "Contact"))
                .field(Field::long_text("notes", "Notes", 500)),
        ]
    }
    fn me_pages(&self) -> Vec<sen_core::resource::Resource> {
        use sen_core::resource::{Field, Resource};
        vec![
            Resource::new("notes", "My notes", "probe_notes")
                .auto_id()
                .owned_by("owner_id")
                .permissions("probe:reports.read", "probe:reports.write")
                .field(
                    Field::text("title", "Title", 60)
                        .required()
                        .search()
                        .sortable(),
                )
                .field(Field::integer("stars", "Stars", 1, 5)),
        ]
    }
    fn settings(&self) -> Vec<sen_core::settings::Setting> {
        use sen_core::settings::Setting;
        vec![
            Setting::flag("beta", "Beta checkout", "Shows the new checkout", false),
            Setting::integer("page_size", "Page size", "Rows per page", (1, 100), 20),
            Setting::choice(
                "mode",
                "Mode",
                "How strict",
                &["lenient", "strict"],
                "lenient",
            ),
            Setting::text("banner", "Banner", "Shown on top", 80, ""),
        ]
    }
    fn roles(&self) -> Vec<sen_core::rbac::RoleDecl> {
        vec![sen_core::rbac::RoleDecl {
            name: "editor",
            title: "Report editor",
            permissions: vec!["reports.read", "reports.write"],
        }]
    }
    fn routes(&self) -> sen_core::routes::Routes {
        sen_core::routes::Routes::new()
            .routes(routes!(create_item))
            .routes(routes!(boom))
            .routes(routes!(panic_handler))
            .routes(routes!(slow))
            .routes(routes!(cache_roundtrip))
            .routes(routes!(big))
            .routes(routes!(region_report))
            .routes(routes!(publish))
            .routes(routes!(notify_user))
            .routes(routes!(send_mail))
            .route("/", axum::routing::get(|| async { "probe root" }))
            .route("where/{id}", axum::routing::get(where_am_i))
    }
    fn mail_templates(&self) -> Vec<sen_core::mail::MailTemplate> {
        use sen_core::mail::MailTemplate;
        vec![
            MailTemplate {
                name: "probe.hello",
                locale: "en",
                subject: "Hello {{ name }}",
                text: "Hi {{ name }}, your order {{ order }} shipped.",
                html: "<p>Hi <b>{{ name }}</b>, your order {{ order }} shipped.</p>",
            },
            MailTemplate {
                name: "probe.hello",
                locale: "vi",
                subject: "Xin chào {{ name }}",
                text: "Chào {{ name }}, đơn hàng {{ order }} đã được gửi đi.",
                html: "<p>Chào <b>{{ name }}</b>, đơn hàng {{ order }} đã được gửi đi.</p>",
            },
        ]
    }
    fn topics(&self) -> Vec<sen_core::realtime::TopicDecl> {
        // Posts are public unless their id starts with `secret`: those need
        // `probe:reports.read`.
        vec![sen_core::realtime::TopicDecl::new(
            "post:{id}",
            |_, p, params| {
                let public = params.get("id").is_some_and(|id| !id.starts_with("secret"));
                let ok = public || p.has("probe:reports.read");
                Box::pin(async move { Ok(ok) })
            },
        )]
    }
}

/// The tables behind the probe's generic pages: text ids for widgets,
/// database-assigned ids (and an owner) for notes.
pub struct ProbeTables;

#[async_trait::async_trait]
impl sen_core::migrate::Migration for ProbeTables {
    fn name(&self) -> &'static str {
        "0001_probe_tables"
    }
    async fn up(&self, tx: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        use sea_orm::ConnectionTrait;
        tx.execute_unprepared(
            "CREATE TABLE probe_widgets (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, qty BIGINT NOT NULL,
             active BOOLEAN NOT NULL DEFAULT FALSE, colour TEXT, contact TEXT, notes TEXT)",
        )
        .await?;
        let auto = match tx.get_database_backend() {
            sea_orm::DbBackend::Postgres => "BIGSERIAL PRIMARY KEY",
            _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        tx.execute_unprepared(&format!(
            "CREATE TABLE probe_notes (id {auto}, owner_id TEXT NOT NULL, title TEXT NOT NULL, stars BIGINT)"
        ))
        .await?;
        Ok(())
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PublishBody {
    topic: String,
    name: String,
    data: serde_json::Value,
}

#[utoipa::path(post, path = "/publish", request_body = PublishBody, responses((status = 200)))]
async fn publish(
    State(ctx): State<AppContext>,
    _me: sen_core::Principal,
    Json(p): Json<PublishBody>,
) -> AppResult<Json<serde_json::Value>> {
    let id = ctx.realtime().publish(&p.topic, &p.name, p.data).await?;
    Ok(Json(serde_json::json!({ "id": id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MailBody {
    to: String,
    #[serde(default)]
    locale: Option<String>,
    vars: serde_json::Value,
    /// Roll the transaction back after queueing.
    #[serde(default)]
    rollback: bool,
}

/// Queues `probe.hello` inside a transaction (rolled back when asked).
#[utoipa::path(post, path = "/mail", request_body = MailBody, responses((status = 200)))]
async fn send_mail(
    State(ctx): State<AppContext>,
    Json(b): Json<MailBody>,
) -> AppResult<Json<serde_json::Value>> {
    let tx = ctx.db().begin_write().await?;
    let mut mail = sen_core::mail::Mail::new("probe.hello", b.to).vars(b.vars);
    if let Some(l) = &b.locale {
        mail = mail.locale(l);
    }
    let id = ctx.mail().send(&tx, mail).await?;
    if b.rollback {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(Json(serde_json::json!({ "id": id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NotifyBody {
    user_id: String,
    title: String,
}

#[utoipa::path(post, path = "/notify", request_body = NotifyBody, responses((status = 200)))]
async fn notify_user(
    State(ctx): State<AppContext>,
    _me: sen_core::Principal,
    Json(b): Json<NotifyBody>,
) -> AppResult<Json<sen_realtime::Notification>> {
    let n = sen_realtime::notify(
        &ctx,
        &b.user_id,
        sen_realtime::NewNotification {
            kind: "probe.note".into(),
            title: b.title,
            body: "body".into(),
            data: serde_json::json!({"link": "/x"}),
        },
    )
    .await?;
    Ok(Json(n))
}

#[derive(Debug, Deserialize, garde::Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    #[garde(length(min = 1, max = 20))]
    name: String,
    #[garde(range(min = 1, max = 100))]
    qty: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Item {
    name: String,
    qty: u32,
}

#[utoipa::path(post, path = "/items", request_body = NewItem, responses((status = 201, body = Item)))]
async fn create_item(Valid(item): Valid<NewItem>) -> (StatusCode, Json<Item>) {
    (
        StatusCode::CREATED,
        Json(Item {
            name: item.name,
            qty: item.qty,
        }),
    )
}

#[utoipa::path(get, path = "/boom", responses((status = 500)))]
async fn boom() -> AppResult<()> {
    Err(AppError::internal(anyhow::anyhow!(
        "secret internal detail: password=hunter2"
    )))
}

#[utoipa::path(get, path = "/panic", responses((status = 500)))]
async fn panic_handler() -> &'static str {
    panic!("handler exploded")
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SlowQuery {
    ms: u64,
}

#[utoipa::path(get, path = "/slow", params(SlowQuery), responses((status = 200)))]
async fn slow(Query(q): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    "done"
}

#[utoipa::path(get, path = "/cache", responses((status = 200), (status = 503)))]
async fn cache_roundtrip(State(ctx): State<AppContext>) -> AppResult<Json<serde_json::Value>> {
    let cache = ctx.cache();
    cache
        .set_json("probe", &42, Some(Duration::from_secs(60)))
        .await?;
    let v: Option<i32> = cache.get_json("probe").await?;
    Ok(Json(serde_json::json!({ "value": v })))
}

/// A region's report: for the region's own staff (a role scoped to the
/// region) or anyone holding `probe:reports.read` globally.
#[utoipa::path(get, path = "/regions/{id}/report", params(("id" = String, Path)), responses((status = 200), (status = 403)))]
async fn region_report(
    State(ctx): State<AppContext>,
    me: sen_core::Principal,
    sen_core::extract::Path(id): sen_core::extract::Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    sen_core::principal::authorize(
        &ctx,
        Some(&me),
        &[
            sen_core::Policy::Permission("probe:reports.read"),
            sen_core::Policy::Scoped {
                permission: "probe:reports.read",
                scope: &id,
            },
        ],
    )?;
    Ok(Json(serde_json::json!({ "region": id })))
}

#[utoipa::path(get, path = "/big", responses((status = 200)))]
async fn big() -> Json<Vec<String>> {
    Json((0..2000).map(|i| format!("item number {i}")).collect())
}

/// The apps tests run with: the built-in system app and the probe.
pub fn apps() -> Apps {
    Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap()
        .register(sen_auth::AuthApp)
        .unwrap()
        .register(sen_jobs::JobsApp)
        .unwrap()
        .register(sen_realtime::RealtimeApp)
        .unwrap()
        .register(sen_mail::MailApp)
        .unwrap()
        .register(sen_files::FilesApp::with_scanner(
            common_scanner::RejectEicar,
        ))
        .unwrap()
        .register(sen_web::WebApp)
        .unwrap()
        .register(Probe)
        .unwrap()
}

/// Creates an owner account directly and signs it in; returns its bearer token.
pub async fn owner_token(app: &TestApp) -> String {
    let email = format!("owner-{}@example.com", uuid::Uuid::now_v7().simple());
    sen_auth::admin_cli::create_owner(&app.ctx, &email, None, "owner pass phrase".into())
        .await
        .unwrap();
    login_token(app, &email, "owner pass phrase").await
}

/// Signs in and returns the access token.
pub async fn login_token(app: &TestApp, email: &str, password: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(r.status(), 200, "login of {email}");
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// `GET path` with a bearer token; the JSON body (any status).
pub async fn get_json(app: &TestApp, path: &str, token: &str) -> serde_json::Value {
    app.request(reqwest::Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A server with the probe app on `backend`.
pub async fn spawn(backend: Backend) -> TestApp {
    TestApp::builder(backend).apps(apps()).spawn().await
}

/// The ticks (µs since the epoch) schedule `name` has enqueued, in order,
/// read from their once keys `cron:{name}:{tick}`.
pub async fn cron_ticks(ctx: &sen_core::AppContext, name: &str) -> Vec<i64> {
    use sea_orm::ConnectionTrait as _;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT key FROM sen_job_keys WHERE key LIKE ? ORDER BY key",
            [format!("cron:{name}:%").into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            r.try_get::<String>("", "key")
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// A client that does not follow redirects (to see the 303s of forms).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session's form token, read from a page as a browser would.
pub async fn csrf_of(app: &TestApp, token: &str, path: &str) -> String {
    let body = app
        .request(reqwest::Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form token")
        .to_string()
}

/// Posts a form with `token`, not following the redirect.
pub async fn post_form(
    app: &TestApp,
    token: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    no_redirects()
        .post(app.url(path))
        .bearer_auth(token)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The TOTP code of `secret_b32` at unix time `at`.
pub fn totp_code(secret_b32: &str, at: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).unwrap();
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name("x".to_string())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a mounted route's handler sees of its own request: the URI and the
/// matched route template.
async fn where_am_i(
    uri: axum::http::Uri,
    matched: axum::extract::MatchedPath,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "uri": uri.to_string(), "matched": matched.as_str() }))
}
