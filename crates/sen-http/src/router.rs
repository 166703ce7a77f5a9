//! Router assembly: the apps' routes under `/api/v1/{name}`, the platform
//! routes (health, metrics, OpenAPI, docs), fallbacks, and the middleware
//! stack, in one function tests call too.

use std::panic::{AssertUnwindSafe, catch_unwind};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use sen_core::{AppContext, Apps};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::edge::Edge;
use crate::security_headers::SecurityHeaders;
use crate::{compress, fallback, health, metrics, openapi, panic_guard, timeout};

/// Builds the whole router for `ctx`'s apps. Fails (instead of panicking)
/// when an app declares conflicting routes.
pub fn build_router(ctx: AppContext) -> anyhow::Result<(Router, utoipa::openapi::OpenApi)> {
    let config = ctx.config().clone();
    let (router, spec) = documented_routes(ctx.apps())?;
    let mut router = router.merge(openapi::docs_router(spec.clone()));
    if config.metrics_enabled {
        router = router.route("/metrics", get(metrics::render));
    }
    metrics::handle();

    // One composed stack, applied once: each `Router::layer` call would box
    // every route again, and each box level costs an allocation and a clone
    // per request. Outermost first.
    let stack = tower::ServiceBuilder::new()
        .layer(Edge {
            security_headers: SecurityHeaders::new(config.hsts),
            activity: ctx.activity().clone(),
        })
        .option_layer(cors(&config.cors_origins)?)
        .layer(compress::CompressLayer)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(panic_guard::PanicGuardLayer)
        // In the same stack, not a `Router::layer` of its own on the REST
        // routes: that would box every route a second time. It limits the
        // handler up to the response head only, so WebSocket sessions, SSE
        // streams and downloads (which run after the head) are not cut.
        .layer(timeout::TimeoutLayer {
            limit: config.request_timeout(),
        });
    let router = router
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(ctx)
        .layer(stack);
    Ok((router, spec))
}

/// The OpenAPI document of `apps` without connecting to anything (`sen openapi`).
pub fn openapi_spec(apps: &Apps) -> anyhow::Result<utoipa::openapi::OpenApi> {
    Ok(documented_routes(apps)?.1)
}

/// The routes that appear in the OpenAPI document: health and every app's
/// routes.
fn documented_routes(
    apps: &Apps,
) -> anyhow::Result<(Router<AppContext>, utoipa::openapi::OpenApi)> {
    let mut api = OpenApiRouter::<AppContext>::new();
    for app in apps.iter() {
        let name = app.name();
        // Each app's routes at their full paths (not `nest`: see
        // `sen_core::routes`), first on their own so a clash inside one
        // app is told apart from a clash between apps.
        let app_routes = catch_unwind(AssertUnwindSafe(|| {
            app.routes().mount(&format!("/api/v1/{name}"))
        }))
        .map_err(|p| {
            anyhow::anyhow!(
                "app `{name}` declares conflicting routes: {}",
                panic_text(&p)
            )
        })?;
        api = catch_unwind(AssertUnwindSafe(move || api.merge(app_routes))).map_err(|p| {
            anyhow::anyhow!(
                "app `{name}`'s routes conflict with another app's: {}",
                panic_text(&p)
            )
        })?;
        let root = catch_unwind(AssertUnwindSafe(|| app.root_routes())).map_err(|p| {
            anyhow::anyhow!(
                "app `{name}` declares conflicting routes: {}",
                panic_text(&p)
            )
        })?;
        api = catch_unwind(AssertUnwindSafe(move || api.merge(root))).map_err(|p| {
            anyhow::anyhow!(
                "app `{name}`'s root routes conflict with another app's: {}",
                panic_text(&p)
            )
        })?;
    }
    let (api_router, api_spec) = api.split_for_parts();
    let (health_router, mut spec) =
        OpenApiRouter::<AppContext>::with_openapi(openapi::BaseDoc::openapi())
            .routes(routes!(health::healthz))
            .routes(routes!(health::readyz))
            .split_for_parts();
    spec.merge(api_spec);
    spec.info.version = env!("CARGO_PKG_VERSION").to_string();
    Ok((health_router.merge(api_router), spec))
}

/// Browsers may call the API only from the configured origins; with none
/// configured there is no CORS layer at all (same-origin only).
fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| anyhow::anyhow!("cors origin {o:?} is not a valid header value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-csrf-token"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .allow_credentials(true)
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
