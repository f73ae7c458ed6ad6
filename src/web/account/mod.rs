//! The signed-in user's own page, `{prefix}/account`: who they are, their
//! live sessions with a form to end each one or all others, and the
//! password form when `credentials.mysql.password_update` is set.
//!
//! For cookie callers only (a bearer client has no page to look at). Every
//! POST needs the page's CSRF token, bound to the session that was shown
//! the page, and is refused when the browser says it comes from another
//! site (`Origin` or `Sec-Fetch-Site`); the token is what an attacker can
//! never have, the origin check refuses early and leaves a trace.

mod password;

pub(crate) use password::change_password;

use std::time::SystemTime;

use http::header;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{login_path, login_url, read_form_body, same_origin, unauthenticated_json};
use crate::app::App;
use crate::auth::account::Requester;
use crate::pages::describe::{ago, browser_name, utc_minute};
use crate::pages::{AccountView, SessionView};
use crate::store::SessionRecord;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

/// `?done=` after a form: a fixed sentence, never text from the request.
#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: String,
}

fn notice(done: &str) -> Option<&'static str> {
    match done {
        "ended" => Some("The session was ended. That browser must sign in again."),
        "gone" => Some("That session had already ended."),
        "others" => Some("You were signed out everywhere else."),
        "password" => Some("Your password was changed. Your other sessions were signed out."),
        _ => None,
    }
}

/// `{prefix}/account`.
pub(crate) fn account_path(app: &App) -> String {
    format!("{}/account", app.config.login.prefix)
}

/// `GET {prefix}/account`.
pub(crate) async fn account_page(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let Some(session) = app
        .auth
        .session_of(&app.cookies.session_tokens(req.headers()))
        .await?
    else {
        return Ok(not_signed_in(app, req.headers(), true));
    };
    let done: Done =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    render(app, &session, StatusCode::OK, notice(&done.done), None, &[]).await
}

/// A browser is sent to sign in and back here; anything else gets a 401.
fn not_signed_in(app: &App, headers: &HeaderMap, navigation: bool) -> Response<Body> {
    let browser = if navigation {
        response::is_navigation(&http::Method::GET, headers)
    } else {
        response::wants_html(headers)
    };
    if !browser {
        return unauthenticated_json();
    }
    // A page is navigated to (302 like any protected page); a form POST is
    // answered 303 so the browser follows with a GET.
    let status = if navigation {
        StatusCode::FOUND
    } else {
        StatusCode::SEE_OTHER
    };
    response::redirect(status, &login_url(app, &account_path(app)))
}

/// The account page of `session`'s user, with what the last form did.
pub(super) async fn render(
    app: &App,
    session: &SessionRecord,
    status: StatusCode,
    notice: Option<&str>,
    alert: Option<&str>,
    reasons: &[String],
) -> Result<Response<Body>, ProxyError> {
    let now = SystemTime::now();
    let sessions = app
        .auth
        .own_sessions(session)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: s.token_hash == session.token_hash,
            browser: browser_name(&s.user_agent),
            ip: s
                .client_ip
                .map_or_else(|| "unknown".into(), |ip| ip.to_string()),
            method: s.auth_method.as_str(),
            created: utc_minute(s.created_at),
            created_iso: humantime::format_rfc3339_seconds(s.created_at).to_string(),
            last_seen: ago(now.duration_since(s.last_seen).unwrap_or_default()),
            user_agent: s.user_agent,
            id: s.public_id,
        })
        .collect();
    let csrf_token = app.auth.csrf.account_token(&session.token_hash)?;
    let prefix = &app.config.login.prefix;
    let revoke_action = format!("{prefix}/account/sessions/revoke");
    let password_action = format!("{prefix}/account/password");
    let logout_url = format!("{prefix}/logout");
    let identity = &session.identity;
    let mfa_enabled = app.auth.mfa_enabled(&identity.id).await?;
    let account_url = format!("{prefix}/account");
    let mfa_setup_url = format!("{prefix}/mfa/setup?next={account_url}");
    let mfa_disable_action = format!("{prefix}/mfa/disable");
    let page = app.pages.account(&AccountView {
        username: &identity.username,
        email: &identity.email,
        roles: &identity.roles,
        sessions,
        csrf_token: &csrf_token,
        revoke_action: &revoke_action,
        password_action: app
            .auth
            .credentials
            .can_set_password()
            .then_some(password_action.as_str()),
        password_min: app.config.password_policy.min,
        password_max: app.config.password_policy.max,
        logout_url: &logout_url,
        mfa_enabled,
        mfa_required: app.auth.mfa.required(identity),
        mfa_setup_url: &mfa_setup_url,
        mfa_disable_action: &mfa_disable_action,
        account_url: &account_url,
        notice,
        alert,
        reasons,
    });
    Ok(response::html(status, page))
}

/// A POST of the account page: its session and its body, or the answer
/// (sign in first, 403) when the request may not act.
pub(super) struct AccountPost {
    pub(super) session: SessionRecord,
    pub(super) body: bytes::Bytes,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf_token: String,
}

/// Reads a POST of the account page and checks that it may act: a live
/// session, the page's CSRF token for it, and nothing saying it comes from
/// another site.
pub(super) async fn read_post(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Result<AccountPost, Response<Body>>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let Some(session) = app
        .auth
        .session_of(&app.cookies.session_tokens(&parts.headers))
        .await?
    else {
        return Ok(Err(not_signed_in(app, &parts.headers, false)));
    };
    let token = serde_urlencoded::from_bytes::<CsrfField>(&body)
        .map(|f| f.csrf_token)
        .unwrap_or_default();
    let from_elsewhere = cross_site(app, &parts.headers, origin);
    if from_elsewhere || !app.auth.csrf.check_account(&session.token_hash, &token)? {
        app.auth.audit(
            "account_csrf_refused",
            &session.identity.username,
            origin.client_ip,
            &origin.request_id,
        );
        return Err(ProxyError::ForbiddenSignedIn);
    }
    Ok(Ok(AccountPost { session, body }))
}

/// True when the browser says the request comes from another site: an
/// `Origin` other than ours (`null`, which our `no-referrer` pages make
/// browsers send on their own form posts, is left to the token), or a
/// `Sec-Fetch-Site` other than `same-origin` / `none`.
fn cross_site(app: &App, headers: &HeaderMap, origin: &Origin) -> bool {
    let foreign_origin = headers
        .get(header::ORIGIN)
        .is_some_and(|sent| sent.as_bytes() != b"null" && !same_origin(app, headers, origin));
    let foreign_fetch = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site != "same-origin" && site != "none");
    foreign_origin || foreign_fetch
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    session: String,
}

/// `POST {prefix}/account/sessions/revoke`, form `session` (a public id, or
/// `others`) and `csrf_token`. Only the caller's own sessions can be named;
/// another user's id is answered like an ended one. Ending the current
/// session from the list signs this browser out (cookie cleared, 303 to the
/// sign-in page); anything else is 303 back to the account page.
pub(crate) async fn revoke(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let post = match read_post(app, req, origin).await? {
        Ok(post) => post,
        Err(answer) => return Ok(answer),
    };
    let form: RevokeForm = serde_urlencoded::from_bytes(&post.body)
        .map_err(|_| ProxyError::BadRequest("account form is not form-encoded"))?;
    let requester = Requester {
        session: &post.session,
        client_ip: origin.client_ip,
        request_id: &origin.request_id,
    };
    let done = if form.session == "others" {
        app.auth.end_other_sessions(&requester).await?;
        "others"
    } else {
        match app.auth.end_own_session(&requester, &form.session).await? {
            Some(ended) if ended.token_hash == post.session.token_hash => {
                let mut response = response::redirect(StatusCode::SEE_OTHER, &login_path(app));
                crate::web::cookies::append_set_cookie(
                    response.headers_mut(),
                    app.cookies.clear_session(),
                );
                return Ok(response);
            }
            Some(_) => "ended",
            None => "gone",
        }
    };
    Ok(back_to_account(app, done))
}

/// 303 to the account page with a notice.
pub(super) fn back_to_account(app: &App, done: &str) -> Response<Body> {
    response::redirect(
        StatusCode::SEE_OTHER,
        &format!("{}?done={done}", account_path(app)),
    )
}
