//! Security headers on every response (a handler that sets one keeps its own):
//! a strict CSP, `nosniff`, no framing, no referrer leaks, and HSTS when the
//! deployment says it is served over HTTPS.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// The policy for JSON and pages; pages that need more set their own.
pub const DEFAULT_CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";

/// The headers to add, built once at start-up.
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: std::sync::Arc<[(HeaderName, HeaderValue)]>,
}

impl SecurityHeaders {
    /// The set for this deployment (`hsts` when served over HTTPS).
    pub fn new(hsts: bool) -> Self {
        let mut headers = vec![
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DEFAULT_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
            ),
        ];
        if hsts {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            ));
        }
        Self {
            headers: headers.into(),
        }
    }

    /// Adds each header the response does not already carry.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.reserve(self.headers.len());
        for (name, value) in self.headers.iter() {
            // One hash per header (a lookup then an insert would be two).
            headers.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
}
