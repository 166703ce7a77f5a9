//! An app's REST routes, declared relative to the app (`/info`) and mounted
//! by the platform at `/api/v1/{name}` as full paths.
//!
//! Why not `OpenApiRouter::nest`: axum 0.8 keeps a nested router's routes
//! flat but wraps each one in `StripPrefix` and `SetNestedPath` layers and
//! boxes it again, so every request to a nested route rebuilds its URI
//! (a `format!` and a new `PathAndQuery`), inserts one more extension and
//! clones one more boxed service. The HTTP benchmark measured
//! `/api/v1/system/info` (nested) about 30 % slower than `/healthz` (not
//! nested) with the same middleware. Routes collected here are registered
//! once, directly at their full path, so an app's route costs what a root
//! route costs; handlers see the request's real URI.

use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::context::AppContext;

/// The routes an app declares (see [`crate::App::routes`]).
#[derive(Default)]
pub struct Routes {
    items: Vec<Item>,
}

enum Item {
    /// A handler documented with `#[utoipa::path]` (from `utoipa_axum::routes!`).
    Documented(UtoipaMethodRouter<AppContext>),
    /// An undocumented route.
    Plain(String, axum::routing::MethodRouter<AppContext>),
}

impl Routes {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds documented handlers: `.routes(routes!(list, create))`.
    pub fn routes(mut self, routes: UtoipaMethodRouter<AppContext>) -> Self {
        self.items.push(Item::Documented(routes));
        self
    }

    /// Adds an undocumented route at `path` (relative to the app).
    pub fn route(
        mut self,
        path: &str,
        method_router: axum::routing::MethodRouter<AppContext>,
    ) -> Self {
        self.items.push(Item::Plain(path.to_owned(), method_router));
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Routes) -> Self {
        self.items.extend(other.items);
        self
    }

    /// Every route at `prefix` + its path, in a router of its own (and the
    /// OpenAPI paths likewise). Panics like axum on two routes for one
    /// path and method; the platform catches that and names the app.
    pub fn mount(self, prefix: &str) -> OpenApiRouter<AppContext> {
        let prefix = prefix.trim_end_matches('/');
        let full = |path: &str| match path {
            "" | "/" => prefix.to_owned(),
            p if p.starts_with('/') => format!("{prefix}{p}"),
            p => format!("{prefix}/{p}"),
        };
        self.items
            .into_iter()
            .fold(OpenApiRouter::new(), |router, item| match item {
                Item::Documented((schemas, paths, method_router)) => {
                    let mut rebased = utoipa::openapi::path::Paths::new();
                    rebased.extensions = paths.extensions;
                    rebased.paths = paths
                        .paths
                        .into_iter()
                        .map(|(path, item)| (full(&path), item))
                        .collect();
                    router.routes((schemas, rebased, method_router))
                }
                Item::Plain(path, method_router) => router.route(&full(&path), method_router),
            })
    }
}
