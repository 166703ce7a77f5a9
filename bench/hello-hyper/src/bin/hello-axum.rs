//! Bare axum (router, no middleware) answering the same body as the hyper
//! ceiling: shows how much of the gap is the framework and how much is
//! Sen's middleware.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let app = Router::new().route(
        "/",
        get(|| async {
            (
                [("content-type", "application/json")],
                "{\"status\":\"ok\"}",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
