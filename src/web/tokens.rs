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
    /// The second factor's code (TOTP or recovery), for users who have one;
    /// a JSON number is read as six digits (`12345` is `012345`).
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// The code of a JSON login, as typed.
fn code_text(code: &serde_json::Value) -> String {
    match code {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(n) if n < 1_000_000 => format!("{n:06}"),
            _ => n.to_string(),
        },
        // `null` and anything else is no code.
        _ => String::new(),
    }
}

fn json_error(error: &str) -> Response<Body> {
    response::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({ "error": error }),
    )
}

/// `POST {prefix}/login` with a JSON body: bearer tokens for API clients.
/// No CSRF token: a cross-site page cannot send `application/json` without
/// a CORS preflight, which portcullis never grants. A user with a second
/// factor sends its code as `"code"` in the same body: without one the
/// answer is 401 `mfa_required` (only ever after the right password), with
/// a wrong one `invalid_credentials`. A user whose role requires a factor
/// they have not enrolled gets 401 `mfa_enrolment_required`: enrolment
/// happens in a browser.
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
    // `null` or an empty string is no code at all.
    let code = login
        .code
        .as_ref()
        .map(code_text)
        .filter(|c| !c.trim().is_empty());
    let outcome = match (outcome, code.as_deref()) {
        (LoginOutcome::NeedsCode(_), None) => return Ok(json_error("mfa_required")),
        (LoginOutcome::NeedsCode(identity), Some(code)) => {
            app.auth
                .second_factor_login(&identity, code, origin.client_ip, &origin.request_id)
                .await?
        }
        (LoginOutcome::NeedsEnrolment(_), _) => return Ok(json_error("mfa_enrolment_required")),
        (outcome, _) => outcome,
    };
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
        LoginOutcome::Failed | LoginOutcome::NeedsCode(_) | LoginOutcome::NeedsEnrolment(_) => {
            Ok(json_error("invalid_credentials"))
        }
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
