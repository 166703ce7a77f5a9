//! RFC 8414 authorization-server metadata and OpenID Connect discovery:
//! one document, served at both well-known paths.

use axum::extract::State;
use sen_core::AppContext;
use sen_core::extract::Json;

/// The provider metadata.
pub async fn metadata(State(ctx): State<AppContext>) -> Json<serde_json::Value> {
    let iss = ctx.config().public_url();
    let mut scopes: Vec<String> = super::OIDC_SCOPES.iter().map(|s| s.to_string()).collect();
    scopes.extend(ctx.rbac().permissions().map(|p| p.name.clone()));
    let alg = match ctx.config().auth_jwt_alg.as_str() {
        "RS256" => "RS256",
        _ => "EdDSA",
    };
    Json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "userinfo_endpoint": format!("{iss}/oauth/userinfo"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "registration_endpoint": format!("{iss}/api/v1/oauth/clients"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name"],
        "authorization_response_iss_parameter_supported": true,
    }))
}
