//! Password reset pages, when `[mail]` and `password_update` are set:
//! `{prefix}/reset` (the "forgot password" form; one answer whether or not
//! the account exists) and `{prefix}/reset/confirm?token=T` (the new
//! password, behind the mailed link).

use http::header;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::login::TOO_MANY;
use super::{csrf_nonce_or_new, is_json, login_path, read_form_body, same_origin, set_retry_after};
use crate::app::App;
use crate::auth::reset::{ResetOutcome, ResetRequest};
use crate::pages::{ResetConfirmView, ResetView};
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

const FORM_EXPIRED: &str = "This form has expired. Please try again.";

fn reset_path(app: &App) -> String {
    format!("{}/reset", app.config.login.prefix)
}

/// `GET {prefix}/reset`.
pub(crate) async fn reset_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    render_reset(app, req.headers(), StatusCode::OK, "", None)
}

/// The form, with a CSRF token bound to the browser's nonce cookie (the
/// sign-in form's, so several tabs keep working).
fn render_reset(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    login: &str,
    error: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let (nonce, fresh) = csrf_nonce_or_new(app, headers);
    let token = app.auth.csrf.login_token(&nonce)?;
    let (action, login_url) = (reset_path(app), login_path(app));
    let page = app.pages.reset(&ResetView {
        action: &action,
        csrf_token: &token,
        login,
        login_url: &login_url,
        error,
    });
    let mut response = response::html(status, page);
    if fresh {
        crate::web::cookies::append_set_cookie(response.headers_mut(), app.cookies.csrf(&nonce));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST {prefix}/reset`, form `login` and `csrf_token` (or a same-origin
/// `Origin`), or JSON `{"login"}`: the same answer for every name.
pub(crate) async fn reset_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let json = is_json(&parts.headers);
    let form: ResetForm = if json {
        // A cross-site page cannot send JSON without a CORS preflight.
        serde_json::from_slice(&body)
            .map_err(|_| ProxyError::BadRequest("body is not {\"login\": ...}"))?
    } else {
        serde_urlencoded::from_bytes(&body)
            .map_err(|_| ProxyError::BadRequest("reset form is not form-encoded"))?
    };
    if !json && !csrf_ok(app, &parts.headers, origin, &form.csrf_token)? {
        app.auth.audit(
            "reset_csrf_refused",
            "",
            origin.client_ip,
            &origin.request_id,
        );
        let mut headers = parts.headers.clone();
        headers.remove(header::COOKIE);
        return render_reset(
            app,
            &headers,
            StatusCode::FORBIDDEN,
            &form.login,
            Some(FORM_EXPIRED),
        );
    }
    match app
        .auth
        .request_reset(&form.login, origin.client_ip, &origin.request_id)
        .await?
    {
        ResetRequest::RateLimited(wait) if json => Ok(super::rate_limited_json(wait)),
        ResetRequest::RateLimited(wait) => {
            let mut response = render_reset(
                app,
                &parts.headers,
                StatusCode::TOO_MANY_REQUESTS,
                &form.login,
                Some(TOO_MANY),
            )?;
            set_retry_after(&mut response, wait);
            Ok(response)
        }
        ResetRequest::Accepted if json => Ok(response::json(
            StatusCode::OK,
            &serde_json::json!({"status": "sent_if_known"}),
        )),
        ResetRequest::Accepted => {
            let minutes = crate::mail::in_words(app.auth.links.reset_ttl);
            let message = format!(
                "If an account matches what you typed, a link to choose a new password is on its way to its email address. The link works once, for {minutes}."
            );
            let login_url = login_path(app);
            let page = app.pages.notice(
                "Check your email",
                &message,
                Some((&login_url, "Back to sign in")),
            );
            Ok(response::html(StatusCode::OK, page))
        }
    }
}

fn csrf_ok(
    app: &App,
    headers: &HeaderMap,
    origin: &Origin,
    token: &str,
) -> Result<bool, ProxyError> {
    if same_origin(app, headers, origin) {
        return Ok(true);
    }
    Ok(match app.cookies.csrf_nonce(headers) {
        Some(nonce) => app.auth.csrf.check_login(&nonce, token)?,
        None => false,
    })
}

#[derive(Deserialize, Default)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The `token` of a link's query string.
pub(crate) fn link_token(req_uri: &http::Uri) -> String {
    serde_urlencoded::from_str::<TokenQuery>(req_uri.query().unwrap_or(""))
        .unwrap_or_default()
        .token
}

/// `GET {prefix}/reset/confirm?token=T`: the form when the link is live
/// (it is not spent by looking: mail scanners open links too).
pub(crate) async fn confirm_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let token = link_token(req.uri());
    match app.auth.reset_link(&token).await? {
        Some(link) => render_confirm(app, &token, StatusCode::OK, &link.username, &[]),
        None => Ok(dead_link(app)),
    }
}

fn render_confirm(
    app: &App,
    token: &str,
    status: StatusCode,
    username: &str,
    reasons: &[String],
) -> Result<Response<Body>, ProxyError> {
    let query = serde_urlencoded::to_string([("token", token)]).unwrap_or_default();
    let action = format!("{}/reset/confirm?{query}", app.config.login.prefix);
    let csrf_token = app.auth.csrf.link_form_token(token)?;
    let policy = app.config.password_policy;
    let page = app.pages.reset_confirm(&ResetConfirmView {
        action: &action,
        csrf_token: &csrf_token,
        username,
        reasons,
        min: policy.min,
        max: policy.max,
    });
    Ok(response::html(status, page))
}

/// 410 for a link that is unknown, spent or expired: one answer for all.
fn dead_link(app: &App) -> Response<Body> {
    let again = reset_path(app);
    let page = app.pages.notice(
        "This link no longer works",
        "Reset links work once, for a limited time. Ask for a new one.",
        Some((&again, "Ask for a new link")),
    );
    response::html(StatusCode::GONE, page)
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    new_password: String,
    csrf_token: Option<String>,
}

/// `POST {prefix}/reset/confirm?token=T`, form `new_password`: 303 to the
/// sign-in page once set, 422 with every reason, 410 for a dead link.
///
/// The link's token is the proof that the post comes from its page (a
/// cross-site page cannot know it); the form's `csrf_token`, bound to that
/// token, must match when it is sent.
pub(crate) async fn confirm_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let token = link_token(req.uri());
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let form: ConfirmForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("form is not form-encoded"))?;
    if let Some(csrf) = &form.csrf_token {
        if !app.auth.csrf.check_link_form(&token, csrf)? {
            app.auth.audit(
                "reset_csrf_refused",
                "",
                origin.client_ip,
                &origin.request_id,
            );
            return Err(ProxyError::Forbidden);
        }
    }
    match app
        .auth
        .confirm_reset(
            &token,
            &form.new_password,
            origin.client_ip,
            &origin.request_id,
        )
        .await?
    {
        ResetOutcome::Done => Ok(response::redirect(StatusCode::SEE_OTHER, &login_path(app))),
        ResetOutcome::InvalidLink => Ok(dead_link(app)),
        ResetOutcome::Weak { username, reasons } => render_confirm(
            app,
            &token,
            StatusCode::UNPROCESSABLE_ENTITY,
            &username,
            &reasons,
        ),
    }
}
