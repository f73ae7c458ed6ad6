//! portcullis' own HTTP endpoints under `login.prefix`, and what every
//! request-facing part shares: the request-path error and its one mapping
//! to a status, response building and content negotiation, cookies, the
//! client's origin, bounded body reads.

mod account;
pub(crate) mod body;
pub(crate) mod cookies;
pub(crate) mod error;
pub(crate) mod forward_auth;
pub(crate) mod forwarded;
pub(crate) mod identity;
mod jwks;
mod login;
mod logout;
mod me;
mod mfa;
mod mfa_setup;
mod register;
mod reset;
pub mod response;
mod sso;
mod tokens;
mod verify;
mod verify_email;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use http_body_util::{BodyExt, Limited};
use response::Body;

use crate::web::body::{is_body_stalled, ReadTimeout};

/// Bodies of our own forms over this are refused before any hashing.
pub(crate) const FORM_BODY_LIMIT: usize = 16 * 1024;

/// Serves a request whose normalized path is under the prefix.
pub(crate) async fn handle(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let prefix = &app.config.login.prefix;
    let endpoint = path.strip_prefix(prefix.as_str()).unwrap_or("");
    match (endpoint.trim_end_matches('/'), req.method().clone()) {
        ("/login", Method::GET | Method::HEAD) => login::login_form(app, &req).await,
        ("/login", Method::POST) => login::login_submit(app, req, origin).await,
        ("/logout", Method::GET | Method::HEAD) => logout::logout_form(app, &req).await,
        ("/logout", Method::POST) => logout::logout_submit(app, req, origin).await,
        ("/me", Method::GET | Method::HEAD) => me::me(app, &req).await,
        ("/jwks.json", Method::GET | Method::HEAD) => jwks::jwks(app),
        ("/refresh", Method::POST) => tokens::refresh(app, req, origin).await,
        ("/verify", Method::GET | Method::HEAD) => verify::verify(app, &req, origin).await,
        ("/sso", Method::GET) => sso::sso(app, &req, origin).await,
        ("/sso", Method::POST) => sso::sso_switch(app, req, origin).await,
        ("/register", Method::POST) if app.config.registration.is_some() => {
            register::register(app, req, origin).await
        }
        ("/reset", Method::GET | Method::HEAD) if app.auth.reset_enabled() => {
            reset::reset_form(app, &req).await
        }
        ("/reset", Method::POST) if app.auth.reset_enabled() => {
            reset::reset_submit(app, req, origin).await
        }
        ("/reset/confirm", Method::GET | Method::HEAD) if app.auth.reset_enabled() => {
            reset::confirm_form(app, &req).await
        }
        ("/reset/confirm", Method::POST) if app.auth.reset_enabled() => {
            reset::confirm_submit(app, req, origin).await
        }
        ("/verify-email", Method::GET) if app.auth.verifies_email() => {
            verify_email::verify_email(app, &req, origin).await
        }
        ("/account", Method::GET | Method::HEAD) => account::account_page(app, &req).await,
        ("/account/sessions/revoke", Method::POST) => account::revoke(app, req, origin).await,
        ("/account/password", Method::POST) => account::change_password(app, req, origin).await,
        ("/mfa", Method::GET | Method::HEAD) => mfa::mfa_form(app, &req).await,
        ("/mfa", Method::POST) => mfa::mfa_submit(app, req, origin).await,
        ("/mfa/setup", Method::GET | Method::HEAD) => mfa_setup::setup_form(app, &req).await,
        ("/mfa/setup", Method::POST) => mfa_setup::setup_submit(app, req, origin).await,
        ("/mfa/disable", Method::POST) => mfa_setup::disable_submit(app, req, origin).await,
        (
            "/login"
            | "/logout"
            | "/me"
            | "/jwks.json"
            | "/refresh"
            | "/verify"
            | "/sso"
            | "/account"
            | "/account/sessions/revoke"
            | "/mfa"
            | "/mfa/setup"
            | "/mfa/disable",
            _,
        ) => Err(ProxyError::MethodNotAllowed),
        _ => Err(ProxyError::NotFound),
    }
}

pub(crate) use account::account_path;

pub(crate) fn login_path(app: &App) -> String {
    format!("{}/login", app.config.login.prefix)
}

/// `{prefix}/login?next=...` for a redirect from a protected page.
pub(crate) fn login_url(app: &App, next: &str) -> String {
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    format!("{}?{query}", login_path(app))
}

/// The browser's CSRF nonce when it sent a well-formed one, else a new one
/// (`true`: it still has to be set as a cookie).
pub(crate) fn csrf_nonce_or_new(app: &App, headers: &HeaderMap) -> (String, bool) {
    let existing = app.cookies.csrf_nonce(headers).filter(|n| {
        n.len() == 22
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    match existing {
        Some(nonce) => (nonce, false),
        None => (crate::auth::csrf::Csrf::new_nonce(), true),
    }
}

/// True when the browser says the request comes from our own origin.
pub(crate) fn same_origin(app: &App, headers: &HeaderMap, origin: &Origin) -> bool {
    origin.is_same_origin(headers, app.config.server.public_url.as_ref())
}

/// A browser always names the page that opens a WebSocket in `Origin`, and
/// WebSockets are exempt from CORS: without this check any site could open
/// one with the user's cookie. Only our own origin and
/// `server.websocket_origins` may; a request without `Origin` is not from a
/// browser page and carries no ambient cookie risk beyond its own.
pub(crate) fn websocket_origin_allowed(
    app: &App,
    headers: &http::HeaderMap,
    origin: &Origin,
) -> bool {
    let Some(sent) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(sent) = sent.to_str() else {
        return false;
    };
    let server = &app.config.server;
    origin.is_same_origin(headers, server.public_url.as_ref())
        || server
            .websocket_origins
            .iter()
            .any(|allowed| sent.eq_ignore_ascii_case(allowed))
}

/// The credentials `headers` present: session cookie values and an
/// `Authorization: Bearer` token.
pub(crate) fn presented(app: &App, headers: &HeaderMap) -> crate::auth::Presented {
    crate::auth::Presented {
        session_tokens: app.cookies.session_tokens(headers),
        bearer: bearer_token(headers).map(str::to_string),
    }
}

/// The token of an `Authorization: Bearer ...` header, if any.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Counts an attempt against `login.ip_rate` (shared with form and JSON
/// logins); `Some(wait)` when the client is over it, recorded as `event`.
pub(crate) async fn over_ip_rate(
    app: &App,
    origin: &Origin,
    event: &'static str,
) -> Result<Option<std::time::Duration>, ProxyError> {
    let wait = app
        .auth
        .throttle
        .login_attempt(
            &crate::auth::rate_key(origin.client_ip),
            app.config.login.ip_rate,
        )
        .await?;
    if wait.is_some() {
        app.auth
            .audit(event, "", origin.client_ip, &origin.request_id);
    }
    Ok(wait)
}

/// 429 `{"error":"rate_limited"}` with `Retry-After`.
pub(crate) fn rate_limited_json(wait: std::time::Duration) -> Response<Body> {
    let mut response = response::json(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({"error": "rate_limited"}),
    );
    set_retry_after(&mut response, wait);
    response
}

/// `Retry-After` in whole seconds, at least one.
pub(crate) fn set_retry_after(response: &mut Response<Body>, wait: std::time::Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

/// 401 for API clients: `WWW-Authenticate: Bearer` and a JSON body.
pub(crate) fn unauthenticated_json() -> Response<Body> {
    let mut response = response::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "unauthenticated"}),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// Collects a small body, refusing anything over [`FORM_BODY_LIMIT`] before
/// reading it when the length is declared, and as soon as it is exceeded
/// otherwise; a body that is not complete within `server.body_read_timeout`
/// is answered 408.
pub(crate) async fn read_form_body(
    app: &App,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<bytes::Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > FORM_BODY_LIMIT as u64) {
        return Err(ProxyError::PayloadTooLarge);
    }
    let timeout = app.config.server.body_read_timeout;
    let body = ReadTimeout::new(body, timeout);
    // A form is at most 16 KiB: the whole of it gets `body_read_timeout`,
    // so a byte now and then cannot hold the connection for days.
    let collected = tokio::time::timeout(timeout, Limited::new(body, FORM_BODY_LIMIT).collect())
        .await
        .map_err(|_| ProxyError::BodyTimeout(timeout))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ProxyError::PayloadTooLarge)
        }
        Err(e) if is_body_stalled(e.as_ref()) => Err(ProxyError::BodyTimeout(timeout)),
        Err(_) => Err(ProxyError::BadRequest("request body could not be read")),
    }
}
