//! gzip/br response compression, entered only by requests that accept one
//! of them.
//!
//! `tower_http`'s `CompressionBody` holds every encoder's state inline
//! (about 5.8 KB), so a response that passes through its layer is a
//! 5.9 KB value moved through each outer layer and then boxed: the HTTP
//! benchmark's profile put those copies and the large allocation among the
//! top costs of a request, even for clients (load balancers' health checks,
//! API clients) that never ask for compression. Here a request without
//! `gzip`, `br` or `*` in `Accept-Encoding` goes straight to the inner service,
//! and a compressed response is boxed once, right where it is made.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Response, header};
use tower_http::compression::{Compression, CompressionBody, DefaultPredicate};

/// The layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompressLayer;

impl<S> tower::Layer<S> for CompressLayer {
    type Service = Compress<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Compress {
            inner: Compression::new(inner),
        }
    }
}

/// A service whose responses are compressed when the client accepts it.
#[derive(Clone)]
pub struct Compress<S> {
    inner: Compression<S, DefaultPredicate>,
}

/// Whether `headers` name an encoding this layer can produce, or the `*`
/// wildcard. A `q=0` entry still counts: the compression service then
/// negotiates properly, and falls back to identity.
fn may_compress(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        let v = v.as_bytes();
        v.contains(&b'*') || contains_ignore_case(v, b"gzip") || contains_ignore_case(v, b"br")
    })
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

impl<S, B> tower::Service<Request> for Compress<S>
where
    S: tower::Service<Request, Response = Response<B>>,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Send + Sync,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CompressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if may_compress(req.headers()) {
            CompressFuture {
                state: State::Compressed {
                    inner: tower::Service::call(&mut self.inner, req),
                },
            }
        } else {
            CompressFuture {
                state: State::Plain {
                    inner: self.inner.get_mut().call(req),
                },
            }
        }
    }
}

type Compressed<F> = tower_http::compression::ResponseFuture<F, DefaultPredicate>;

pin_project_lite::pin_project! {
    /// The inner future, through the compression service or not.
    pub struct CompressFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The client accepts no encoding we make.
        Plain { #[pin] inner: F },
        // The compression service decides.
        Compressed { #[pin] inner: Compressed<F> },
    }
}

impl<F, B, E> Future for CompressFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Send + Sync,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Plain { inner } => inner.poll(cx).map_ok(|r| r.map(Body::new)),
            StateProj::Compressed { inner } => inner
                .poll(cx)
                .map_ok(|r| r.map(|b: CompressionBody<B>| Body::new(b))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_gzip_or_br_enters_compression() {
        assert!(!may_compress(&headers(&[])));
        assert!(!may_compress(&headers(&["identity"])));
        assert!(!may_compress(&headers(&["deflate, zstd"])));
        assert!(may_compress(&headers(&["gzip"])));
        assert!(may_compress(&headers(&["deflate", "BR;q=0.5"])));
        assert!(may_compress(&headers(&["gzip, deflate, br, zstd"])));
        assert!(may_compress(&headers(&["*"])));
    }
}
