//! The OAuth 2.0 / OpenID Connect provider through the real router on both
//! backends: client registration, exact redirect matching, PKCE S256 only,
//! sign-in and consent pages, single-use codes (a replay revokes what the
//! code issued; concurrent redemption lets exactly one through), refresh
//! rotation, id tokens, userinfo, revocation, introspection, consents, and
//! the metadata documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Method, Response};
use sea_orm::ConnectionTrait as _;
use sen_testkit::{TestApp, assert_problem};
use serde_json::{Value, json};

const PW: &str = "a long pass phrase";
const CB: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abcdef";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Flow {
    app: TestApp,
    http: reqwest::Client,
    user_token: String,
    public_id: String,
    conf_id: String,
    conf_secret: String,
}

async fn setup(app: TestApp) -> Flow {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ann@example.com", "password": PW, "name": "Ann"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let user_token = common::login_token(&app, "ann@example.com", PW).await;
    let create = |body: Value| {
        let app = &app;
        let t = user_token.clone();
        async move {
            app.request(Method::POST, "/api/v1/oauth/clients")
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let bad = create(
        json!({"name": "x", "redirect_uris": ["http://evil.example/cb"], "confidential": false}),
    )
    .await;
    assert_problem(bad, 422, "validation_failed").await;
    let r =
        create(json!({"name": "Public app", "redirect_uris": [CB], "confidential": false})).await;
    assert_eq!(r.status(), 201);
    let public: Value = r.json().await.unwrap();
    assert!(public.get("client_secret").is_none());
    let r =
        create(json!({"name": "Server app", "redirect_uris": [CB], "confidential": true})).await;
    let conf: Value = r.json().await.unwrap();
    Flow {
        http: no_redirects(),
        user_token,
        public_id: public["client_id"].as_str().unwrap().into(),
        conf_id: conf["client_id"].as_str().unwrap().into(),
        conf_secret: conf["client_secret"].as_str().unwrap().into(),
        app,
    }
}

fn authorize_url(flow: &Flow, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&flow.app.url("/oauth/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        let challenge = sen_auth::oauth::s256(VERIFIER);
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CB),
            ("scope", "openid email profile"),
            ("state", "st-1"),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
        ];
        for (k, v) in extra {
            params.retain(|(pk, _)| pk != k);
            params.push((k, v));
        }
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if !extra.iter().any(|(k, _)| *k == "code_challenge") {
            q.append_pair("code_challenge", &challenge);
        }
    }
    u.to_string()
}

fn location(r: &Response) -> url::Url {
    let l = r.headers()["location"].to_str().unwrap();
    url::Url::parse(l)
        .or_else(|_| url::Url::parse(&format!("http://x{l}")))
        .unwrap()
}

fn param(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn form_of(u: &url::Url) -> Vec<(String, String)> {
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Signs in through the authorize page and returns the access cookie.
async fn sign_in(flow: &Flow, url: &str) -> String {
    let r = flow.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"password\""), "login page");
    let mut form = form_of(&url::Url::parse(url).unwrap());
    form.push(("action".into(), "login".into()));
    form.push(("email".into(), "ann@example.com".into()));
    form.push(("password".into(), PW.into()));
    // Without our Origin the form is refused.
    let r = flow
        .http
        .post(flow.app.url("/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = flow
        .http
        .post(flow.app.url("/oauth/authorize"))
        .header("origin", flow.app.url(""))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sen_access="))
        .unwrap()
}

/// Consents (approve) and returns the code.
async fn approve(flow: &Flow, url: &str, cookie: &str) -> String {
    let r = flow
        .http
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Allow"), "consent page");
    let mut form = form_of(&url::Url::parse(url).unwrap());
    form.push(("action".into(), "approve".into()));
    let r = flow
        .http
        .post(flow.app.url("/oauth/authorize"))
        .header("origin", flow.app.url(""))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.as_str().starts_with(CB), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("st-1"));
    assert_eq!(
        param(&to, "iss").as_deref(),
        Some(flow.app.url("").as_str())
    );
    param(&to, "code").unwrap()
}

async fn token(flow: &Flow, form: &[(&str, &str)]) -> Response {
    flow.http
        .post(flow.app.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn redeem(flow: &Flow, code: &str, client_id: &str) -> Response {
    token(
        flow,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn me_status(flow: &Flow, token: &str) -> u16 {
    flow.app
        .request(Method::GET, "/api/v1/me")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn code_flow_issues_tokens_once_with_an_id_token(app: TestApp) {
    let flow = setup(app).await;
    let url = authorize_url(&flow, &flow.public_id, &[]);
    let cookie = sign_in(&flow, &url).await;
    let code = approve(&flow, &url, &cookie).await;
    let r = redeem(&flow, &code, &flow.public_id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "email openid profile");
    let access = t["access_token"].as_str().unwrap().to_string();
    let id_token = t["id_token"].as_str().unwrap().to_string();

    // The id token verifies with the published key, for this client and nonce.
    let jwks: Value = flow
        .app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&id_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
            .unwrap()
            .clone(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[&flow.public_id]);
    v.set_issuer(&[flow.app.url("")]);
    let claims = jsonwebtoken::decode::<Value>(
        &id_token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "ann@example.com");
    // An id token is not an access token.
    assert_eq!(me_status(&flow, &id_token).await, 401);

    // The access token works for the user, with no permissions beyond its scopes.
    assert_eq!(me_status(&flow, &access).await, 200);
    let info: Value = flow
        .app
        .request(Method::GET, "/oauth/userinfo")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "ann@example.com");

    // A second use of the code: invalid_grant, and its tokens are revoked.
    let r = redeem(&flow, &code, &flow.public_id).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(me_status(&flow, &access).await, 401);

    // Consent is remembered: the next authorize with the session skips the page.
    let r = flow
        .http
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let code2 = param(&location(&r), "code").unwrap();
    let t: Value = redeem(&flow, &code2, &flow.public_id)
        .await
        .json()
        .await
        .unwrap();
    let access2 = t["access_token"].as_str().unwrap().to_string();
    let refresh2 = t["refresh_token"].as_str().unwrap().to_string();
    // Refresh rotates; the old refresh token replayed is refused.
    let r = token(
        &flow,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("client_id", &flow.public_id),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let t3: Value = r.json().await.unwrap();
    assert_ne!(t3["refresh_token"], refresh2.as_str());
    let r = token(
        &flow,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("client_id", &flow.public_id),
        ],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // A first-party refresh endpoint does not take a client's refresh token.
    assert_problem(
        flow.app
            .post_json(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": t3["refresh_token"]}),
            )
            .await,
        401,
        "invalid_refresh_token",
    )
    .await;
    let _ = access2;

    // The user sees and withdraws the consent; the client's tokens die.
    let consents: Value = flow
        .app
        .request(Method::GET, "/api/v1/me/consents")
        .bearer_auth(&flow.user_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        consents["items"][0]["client_id"],
        flow.public_id.as_str(),
        "{consents}"
    );
    // The replay ended that token family.
    let access3 = t3["access_token"].as_str().unwrap().to_string();
    assert_eq!(me_status(&flow, &access3).await, 401);
    let r = flow
        .http
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code4 = param(&location(&r), "code").unwrap();
    let t4: Value = redeem(&flow, &code4, &flow.public_id)
        .await
        .json()
        .await
        .unwrap();
    let access4 = t4["access_token"].as_str().unwrap().to_string();
    assert_eq!(me_status(&flow, &access4).await, 200);
    let r = flow
        .app
        .request(
            Method::DELETE,
            &format!("/api/v1/me/consents/{}", flow.public_id),
        )
        .bearer_auth(&flow.user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me_status(&flow, &access4).await, 401);
}

async fn bad_requests_never_redirect_to_unregistered_uris(app: TestApp) {
    let flow = setup(app).await;
    for bad in [
        "http://127.0.0.1:9/cb/",
        "http://127.0.0.1:9/CB",
        "http://127.0.0.1:9/cb/extra",
        "http://127.0.0.1:9/c",
        "https://127.0.0.1:9/cb",
    ] {
        let url = authorize_url(&flow, &flow.public_id, &[("redirect_uri", bad)]);
        let r = flow.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers().get("location").is_none(),
            "{bad}: never redirected"
        );
    }
    let url = authorize_url(&flow, "senc_unknown", &[]);
    assert_eq!(flow.http.get(&url).send().await.unwrap().status(), 400);
    // With a good redirect, protocol errors go back to the client.
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "openid teleport")], "invalid_scope"),
    ] {
        let url = authorize_url(&flow, &flow.public_id, &extra);
        let r = flow.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 303, "{extra:?}");
        let to = location(&r);
        assert_eq!(param(&to, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(param(&to, "state").as_deref(), Some("st-1"));
    }
    // Password and implicit grants are refused.
    let r = token(
        &flow,
        &[
            ("grant_type", "password"),
            ("client_id", &flow.public_id),
            ("username", "ann@example.com"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

async fn pkce_expiry_and_concurrent_redemption(app: TestApp) {
    let flow = setup(app).await;
    let url = authorize_url(&flow, &flow.public_id, &[]);
    let cookie = sign_in(&flow, &url).await;
    // A wrong verifier fails, and does not burn the code for the right one? It
    // does not matter: the code is single-use only once redeemed.
    let code = approve(&flow, &url, &cookie).await;
    let r = token(
        &flow,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", &flow.public_id),
            (
                "code_verifier",
                "another-verifier-0123456789-0123456789-0123",
            ),
        ],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Another client cannot redeem it.
    let r = token(
        &flow,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", &flow.conf_id),
            ("client_secret", &flow.conf_secret),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Eight concurrent redemptions: exactly one succeeds.
    let attempts = (0..8).map(|_| redeem(&flow, &code, &flow.public_id));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // An expired code is refused.
    let code = {
        let r = flow
            .http
            .get(&url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        param(&location(&r), "code").unwrap()
    };
    let db = flow.app.ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_oauth_codes SET expires_at = 0 WHERE used_at IS NULL",
            [],
        ))
        .await
        .unwrap();
    let r = redeem(&flow, &code, &flow.public_id).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

async fn confidential_clients_revoke_and_introspect(app: TestApp) {
    let flow = setup(app).await;
    let url = authorize_url(&flow, &flow.conf_id, &[]);
    let cookie = sign_in(&flow, &url).await;
    let code = approve(&flow, &url, &cookie).await;
    // Without the secret: invalid_client.
    let r = redeem(&flow, &code, &flow.conf_id).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = flow
        .http
        .post(flow.app.url("/oauth/token"))
        .basic_auth(&flow.conf_id, Some(&flow.conf_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let introspect = |tok: String| {
        let flow = &flow;
        async move {
            flow.http
                .post(flow.app.url("/oauth/introspect"))
                .basic_auth(&flow.conf_id, Some(&flow.conf_secret))
                .form(&[("token", tok)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let i = introspect(access.to_string()).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], flow.conf_id.as_str());
    let r = flow
        .http
        .post(flow.app.url("/oauth/introspect"))
        .basic_auth(&flow.conf_id, Some("wrong"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = flow
        .http
        .post(flow.app.url("/oauth/revoke"))
        .basic_auth(&flow.conf_id, Some(&flow.conf_secret))
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(access.to_string()).await["active"], false);
    assert_eq!(me_status(&flow, access).await, 401);
    let r = flow
        .http
        .post(flow.app.url("/oauth/token"))
        .basic_auth(&flow.conf_id, Some(&flow.conf_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

async fn metadata_documents_describe_the_provider(app: TestApp) {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(m["issuer"], app.url(""));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(m["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    }
}

/// The `oauth2` crate, unmodified, as a public client with PKCE: code
/// exchange and refresh against our endpoints.
async fn the_oauth2_crate_works_unmodified(app: TestApp) {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
        TokenResponse as _, TokenUrl,
    };
    let flow = setup(app).await;
    let client = BasicClient::new(ClientId::new(flow.public_id.clone()))
        .set_auth_uri(AuthUrl::new(flow.app.url("/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(flow.app.url("/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("openid".into()))
        .set_pkce_challenge(challenge)
        .url();
    let url = url.to_string();
    let cookie = sign_in(&flow, &url).await;
    let mut form = form_of(&url::Url::parse(&url).unwrap());
    form.push(("action".into(), "approve".into()));
    let r = flow
        .http
        .post(flow.app.url("/oauth/authorize"))
        .header("origin", flow.app.url(""))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let to = location(&r);
    assert_eq!(param(&to, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = param(&to, "code").unwrap();
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(me_status(&flow, tokens.access_token().secret()).await, 200);
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(
        me_status(&flow, refreshed.access_token().secret()).await,
        200
    );
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret()
    );
}

sen_testkit::both_backends!(spawn;
    the_oauth2_crate_works_unmodified,
    code_flow_issues_tokens_once_with_an_id_token,
    bad_requests_never_redirect_to_unregistered_uris,
    pkce_expiry_and_concurrent_redemption,
    confidential_clients_revoke_and_introspect,
    metadata_documents_describe_the_provider,
);

async fn spawn(backend: sen_testkit::Backend) -> TestApp {
    common::spawn(backend).await
}

/// Drives a browser through sign-in at `rp` with the provider `idp` (both
/// real Sen servers): returns the RP's final response to the callback.
async fn oidc_sign_in(rp: &TestApp, idp: &TestApp, email: &str, password: &str) -> Response {
    let http = no_redirects();
    let r = http
        .get(rp.url("/api/v1/auth/oidc/idp/start?return_to=/welcome"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let state_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sen_oidc="))
        .unwrap();
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        authorize.starts_with(&idp.url("/oauth/authorize")),
        "{authorize}"
    );
    // At the provider: sign in, then consent.
    let mut form = form_of(&url::Url::parse(&authorize).unwrap());
    form.push(("action".into(), "login".into()));
    form.push(("email".into(), email.into()));
    form.push(("password".into(), password.into()));
    let r = http
        .post(idp.url("/oauth/authorize"))
        .header("origin", idp.url(""))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let idp_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sen_access="))
        .unwrap();
    let mut form = form_of(&url::Url::parse(&authorize).unwrap());
    form.push(("action".into(), "approve".into()));
    let r = http
        .post(idp.url("/oauth/authorize"))
        .header("origin", idp.url(""))
        .header("cookie", &idp_cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        callback.starts_with(&rp.url("/api/v1/auth/oidc/idp/callback")),
        "{callback}"
    );
    // A callback without the state cookie is refused.
    let r = http.get(&callback).send().await.unwrap();
    assert_problem(r, 400, "oidc_state_mismatch").await;
    http.get(&callback)
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap()
}

async fn idp_with_client(rp_port: u16) -> (TestApp, String, String) {
    let idp = common::spawn(sen_testkit::Backend::Sqlite).await;
    for (email, verified) in [
        ("ann@example.com", true),
        ("eve@example.com", false),
        ("new@example.com", true),
    ] {
        let r = idp
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": PW, "name": email.split('@').next().unwrap()}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let db = idp.ctx.db();
        db.orm()
            .execute_raw(db.statement(
                "UPDATE sen_users SET email_verified = ? WHERE email = ?",
                [verified.into(), email.into()],
            ))
            .await
            .unwrap();
    }
    let dev = common::login_token(&idp, "ann@example.com", PW).await;
    let r = idp
        .request(Method::POST, "/api/v1/oauth/clients")
        .bearer_auth(dev)
        .json(&json!({
            "name": "Relying party",
            "redirect_uris": [format!("http://127.0.0.1:{rp_port}/api/v1/auth/oidc/idp/callback")],
            "confidential": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    (
        idp,
        c["client_id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    )
}

/// Third-party sign-in against a second Sen acting as the provider: a new
/// account is created; an existing one is linked only by a verified email.
async fn sign_in_with_another_sen_as_provider(backend: sen_testkit::Backend) {
    let rp_port = sen_testkit::free_port();
    let (idp, client_id, secret) = idp_with_client(rp_port).await;
    let issuer = idp.url("");
    let rp = TestApp::builder(backend)
        .apps(common::apps())
        .port(rp_port)
        .config(move |c| {
            c.auth_oidc_providers = vec![sen_core::config::OidcProvider {
                name: "idp".into(),
                title: Some("Sen IdP".into()),
                issuer,
                client_id,
                client_secret: sen_core::config::Secret::new(secret),
            }]
        })
        .spawn()
        .await;
    // Ann already has an account here; the provider vouches for her email.
    let r = rp
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ann@example.com", "password": "local pass phrase", "name": "Ann"}),
        )
        .await;
    let local_id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = oidc_sign_in(&rp, &idp, "ann@example.com", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/welcome");
    let access = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sen_access="))
        .unwrap();
    let me: Value = rp
        .request(Method::GET, "/api/v1/me")
        .header("cookie", &access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["id"],
        local_id.as_str(),
        "linked to the existing account"
    );
    // A newcomer gets an account.
    let r = oidc_sign_in(&rp, &idp, "new@example.com", PW).await;
    assert_eq!(r.status(), 303);
    let db = rp.ctx.db();
    let n = db
        .orm()
        .query_one_raw(db.statement("SELECT COUNT(*) AS n FROM sen_identities", []))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(n, 2);
    // Eve exists here, but the provider has not verified her email: no takeover.
    let r = rp
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "eve@example.com", "password": "local pass phrase", "name": "Eve"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = oidc_sign_in(&rp, &idp, "eve@example.com", PW).await;
    assert_problem(r, 409, "account_exists").await;
    let _ = idp;
}

mod oidc {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::sign_in_with_another_sen_as_provider(sen_testkit::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::sign_in_with_another_sen_as_provider(sen_testkit::Backend::Postgres).await
    }
}
