//! Security headers on every response (a handler that sets one keeps its own):
//! a strict CSP, `nosniff`, no framing, no referrer leaks, and HSTS when the
//! deployment says it is served over HTTPS.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// The policy for JSON and pages; pages that need more set their own.
pub const DEFAULT_CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";

/// Adds the security headers `response` does not already carry.
pub fn apply(headers: &mut HeaderMap, hsts: bool) {
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
    if hsts {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
}
