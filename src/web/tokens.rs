//! Bearer tokens for API clients: the JSON login and refresh rotation.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{over_ip_rate, rate_limited_json, read_form_body, set_retry_after};
use crate::app::App;
use crate::auth::LoginOutcome;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

#[derive(Deserialize)]
struct JsonLogin {
    username: String,
    password: String,
}

/// `POST {prefix}/login` with a JSON body: bearer tokens for API clients.
/// No CSRF token: a cross-site page cannot send `application/json` without
/// a CORS preflight, which portcullis never grants.
pub(crate) async fn json_login(
    app: &App,
    body: &[u8],
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let Ok(login) = serde_json::from_slice::<JsonLogin>(body) else {
        return Ok(response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request"}),
        ));
    };
    let outcome = app
        .auth
        .password_login(
            login.username.trim(),
            &login.password,
            origin.client_ip,
            &origin.request_id,
        )
        .await?;
    match outcome {
        LoginOutcome::Success(identity) => {
            // A new family cannot have been revoked: `None` is impossible here.
            let Some(issued) = app.auth.tokens.issue(&identity, None).await? else {
                return Err(ProxyError::Internal(
                    "a new token family was refused".into(),
                ));
            };
            Ok(response::json(StatusCode::OK, &serde_json::json!(issued)))
        }
        LoginOutcome::Failed => Ok(response::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "invalid_credentials"}),
        )),
        LoginOutcome::RateLimited(wait) => {
            let mut response = response::json(
                StatusCode::TOO_MANY_REQUESTS,
                &serde_json::json!({"error": "rate_limited"}),
            );
            set_retry_after(&mut response, wait);
            Ok(response)
        }
    }
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST {prefix}/refresh`: rotates a refresh token.
pub(crate) async fn refresh(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    // Refreshes share the sign-in rate limit: a refresh token is a
    // credential too, and guessing one must cost like guessing a password.
    if let Some(wait) = over_ip_rate(app, origin, "refresh_rate_limited").await? {
        return Ok(rate_limited_json(wait));
    }
    let token = serde_json::from_slice::<RefreshRequest>(&body)
        .map(|r| r.refresh_token)
        .unwrap_or_default();
    match app
        .auth
        .refresh(&token, origin.client_ip, &origin.request_id)
        .await?
    {
        Some(issued) => Ok(response::json(StatusCode::OK, &serde_json::json!(issued))),
        None => Ok(response::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "invalid_grant"}),
        )),
    }
}
