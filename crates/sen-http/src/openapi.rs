//! The OpenAPI 3.1 document (generated from the routes' `#[utoipa::path]`
//! declarations) at `/api/openapi.json`, and the Swagger UI at `/api/docs`
//! served from assets embedded at build time (no CDN, no online validator).

use axum::Router;
use axum::http::{HeaderValue, header};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const SPEC_PATH: &str = "/api/openapi.json";
/// Where the docs UI is served.
pub const DOCS_PATH: &str = "/api/docs";

/// The CSP of the docs UI: Swagger UI injects inline styles.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The document's fixed parts; paths come from the apps.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sen API", description = "REST API of a Sen deployment. Errors are RFC 9457 problem+json with a stable `code`."),
    components(schemas(sen_core::error::Problem, sen_core::error::FieldError)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "system", description = "About this deployment"),
    )
)]
pub struct BaseDoc;

/// The routes serving the document and the docs UI.
pub fn docs_router<S: Clone + Send + Sync + 'static>(spec: utoipa::openapi::OpenApi) -> Router<S> {
    let ui = SwaggerUi::new(DOCS_PATH).url(SPEC_PATH, spec).config(
        Config::new([SPEC_PATH])
            .validator_url("none")
            .try_it_out_enabled(true),
    );
    Router::<S>::from(ui).layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ))
}
