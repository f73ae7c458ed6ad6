//! The second step of a sign-in, `{prefix}/mfa`: after a correct password
//! the browser holds a pending sign-in cookie (five minutes, single use,
//! bound to the user and `next`) and is sent here; a TOTP or recovery code
//! completes the sign-in exactly as a password would (new session, audit,
//! 303 to `next`). Users who must enrol go to `{prefix}/mfa/setup` instead.

use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::login::{new_session, render_login, TOO_MANY};
use super::{login_path, over_ip_rate, read_form_body, set_retry_after};
use crate::app::App;
use crate::auth::mfa::Pending;
use crate::auth::LoginOutcome;
use crate::pages::MfaCodeView;
use crate::store::{AuthMethod, Identity};
use crate::web::cookies::append_set_cookie;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

/// Wrong and locked alike: a guesser learns nothing from the answer.
pub(crate) const WRONG_CODE: &str = "That code is not right. Please try again.";
pub(crate) const EXPIRED: &str = "Your sign-in took too long. Please sign in again.";
const FORM_EXPIRED: &str = "This form has expired. Please try again.";

pub(crate) fn mfa_path(app: &App) -> String {
    format!("{}/mfa", app.config.login.prefix)
}

pub(crate) fn setup_path(app: &App) -> String {
    format!("{}/mfa/setup", app.config.login.prefix)
}

/// After a correct password (or a partner's hand-off, `method`): no
/// session yet, a pending sign-in cookie and 303 to the code form (or to
/// enrolment).
pub(super) fn begin(
    app: &App,
    identity: &Identity,
    next: &str,
    enrol: bool,
    method: AuthMethod,
) -> Result<Response<Body>, ProxyError> {
    let (_, value) = app.auth.mfa.issue_pending(identity, next, method)?;
    let to = if enrol {
        setup_path(app)
    } else {
        mfa_path(app)
    };
    let mut response = response::redirect(StatusCode::SEE_OTHER, &to);
    append_set_cookie(response.headers_mut(), app.cookies.pending_mfa(&value));
    Ok(response)
}

/// The valid, unexpired pending sign-in the request carries, if any.
pub(super) fn pending_of(app: &App, headers: &HeaderMap) -> Result<Option<Pending>, ProxyError> {
    match app.cookies.pending_mfa_value(headers) {
        Some(value) => Ok(app.auth.mfa.read_pending(&value)?),
        None => Ok(None),
    }
}

/// The CSRF token of a form posted under a pending sign-in.
pub(super) fn pending_form_token(app: &App, pending: &Pending) -> Result<String, ProxyError> {
    Ok(app
        .auth
        .mfa
        .form_token(format!("p:{}", pending.id).as_bytes())?)
}

pub(super) fn check_pending_form_token(
    app: &App,
    pending: &Pending,
    token: &str,
) -> Result<bool, ProxyError> {
    Ok(app
        .auth
        .mfa
        .check_form_token(format!("p:{}", pending.id).as_bytes(), token)?)
}

/// The sign-in page again, 401, with the pending cookie cleared: the
/// pending sign-in is gone (expired, spent, or never there).
pub(super) fn expired(app: &App, headers: &HeaderMap) -> Result<Response<Body>, ProxyError> {
    let mut response = render_login(
        app,
        headers,
        StatusCode::UNAUTHORIZED,
        "/",
        "",
        Some(EXPIRED),
    )?;
    append_set_cookie(response.headers_mut(), app.cookies.clear_pending_mfa());
    Ok(response)
}

fn render_code_form(
    app: &App,
    pending: &Pending,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let token = pending_form_token(app, pending)?;
    let page = app.pages.mfa_code(&MfaCodeView {
        action: &mfa_path(app),
        csrf_token: &token,
        username: &pending.username,
        login_url: &super::login_url(app, &pending.next),
        error,
    });
    Ok(response::html(status, page))
}

/// `GET {prefix}/mfa`: the code form; without a pending sign-in, the
/// sign-in page; for a user without a factor, the setup page.
pub(crate) async fn mfa_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let Some(pending) = pending_of(app, req.headers())? else {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &login_path(app)));
    };
    if !app.auth.mfa_enabled(&pending.user_id).await? {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &setup_path(app)));
    }
    render_code_form(app, &pending, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST {prefix}/mfa`: a code completes the pending sign-in.
pub(crate) async fn mfa_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let Some(pending) = pending_of(app, &parts.headers)? else {
        return expired(app, &parts.headers);
    };
    let form: CodeForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("code form is not form-encoded"))?;
    if !check_pending_form_token(app, &pending, &form.csrf_token)? {
        app.auth.audit(
            "mfa_csrf_refused",
            &pending.username,
            origin.client_ip,
            &origin.request_id,
        );
        return render_code_form(app, &pending, StatusCode::FORBIDDEN, Some(FORM_EXPIRED));
    }
    if !app.auth.mfa_enabled(&pending.user_id).await? {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &setup_path(app)));
    }
    if let Some(wait) = over_ip_rate(app, origin, "mfa_rate_limited").await? {
        let mut response =
            render_code_form(app, &pending, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY))?;
        set_retry_after(&mut response, wait);
        return Ok(response);
    }
    let outcome = app
        .auth
        .second_factor_login(
            &pending.identity(),
            &form.code,
            origin.client_ip,
            &origin.request_id,
        )
        .await?;
    let LoginOutcome::Success(identity) = outcome else {
        return render_code_form(app, &pending, StatusCode::UNAUTHORIZED, Some(WRONG_CODE));
    };
    complete(app, &parts.headers, origin, &pending, identity, None).await
}

/// Completes a pending sign-in: spends it (once, on any instance), starts
/// the session and clears the pending cookie. `page`: a 200 page to show
/// (the recovery codes after a forced enrolment) instead of 303 to `next`.
pub(super) async fn complete(
    app: &App,
    headers: &HeaderMap,
    origin: &Origin,
    pending: &Pending,
    identity: Identity,
    page: Option<String>,
) -> Result<Response<Body>, ProxyError> {
    if !app.auth.mfa.spend_pending(pending).await? {
        app.auth.audit(
            "mfa_pending_reused",
            &pending.username,
            origin.client_ip,
            &origin.request_id,
        );
        return expired(app, headers);
    }
    let cookie = new_session(app, headers, origin, identity, pending.method()).await?;
    let mut response = match page {
        Some(page) => response::html(StatusCode::OK, page),
        None => response::redirect(StatusCode::SEE_OTHER, &pending.next),
    };
    append_set_cookie(response.headers_mut(), cookie);
    append_set_cookie(response.headers_mut(), app.cookies.clear_pending_mfa());
    Ok(response)
}
