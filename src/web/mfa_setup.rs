//! Enrolment and turning off, `{prefix}/mfa/setup` and
//! `{prefix}/mfa/disable`, for a signed-in user or for one whose role
//! requires a factor and who holds a pending sign-in (their session starts
//! when they confirm). The setup page shows the `otpauth://` URI as text
//! and as an inline SVG QR code; a current code turns the factor on and
//! the ten recovery codes are shown, once.

use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::mfa::{
    check_pending_form_token, complete, expired, mfa_path, pending_form_token, pending_of,
    setup_path, WRONG_CODE,
};
use super::{login_url, read_form_body};
use crate::app::App;
use crate::auth::mfa::{Disable, Enrolment, Pending};
use crate::pages::{MfaSetupView, MfaStatusView};
use crate::policy::next::validate_next;
use crate::store::{Identity, SessionRecord};
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

const FORM_EXPIRED: &str = "This form has expired. Please try again.";
const ENROL_WRONG: &str =
    "That code is not right. Check that your phone's clock is set automatically, then try the current code.";
const REQUIRED: &str = "Your account's role requires two-step verification: it stays on.";

/// Who is enrolling: a user in the middle of a sign-in (forced by
/// `mfa.required_roles`) or a signed-in user.
enum Enroller {
    Pending(Pending, Identity),
    Session(SessionRecord),
}

impl Enroller {
    fn identity(&self) -> &Identity {
        match self {
            Enroller::Pending(_, identity) => identity,
            Enroller::Session(session) => &session.identity,
        }
    }

    fn form_token(&self, app: &App) -> Result<String, ProxyError> {
        match self {
            Enroller::Pending(pending, _) => pending_form_token(app, pending),
            Enroller::Session(session) => session_form_token(app, session),
        }
    }

    /// A signed-in user's forms also take the account page's token (bound
    /// to the same session), so the account page can carry the form that
    /// turns the factor off with the one token all its forms share.
    fn check_form_token(&self, app: &App, token: &str) -> Result<bool, ProxyError> {
        match self {
            Enroller::Pending(pending, _) => check_pending_form_token(app, pending, token),
            Enroller::Session(session) => {
                let hash = &session.token_hash;
                let ours = app
                    .auth
                    .mfa
                    .check_form_token(&[&b"s:"[..], &hash.0].concat(), token)?;
                Ok(ours || app.auth.csrf.check_account(hash, token)?)
            }
        }
    }

    /// Where the pages lead on to: the pending sign-in's `next`, else the
    /// `next` the page was opened with.
    fn next(&self, asked: &str) -> String {
        match self {
            Enroller::Pending(pending, _) => pending.next.clone(),
            Enroller::Session(_) => validate_next(asked),
        }
    }
}

/// The CSRF token of a second-factor form a signed-in user posts, bound to
/// the session: the setup and status pages', and any other page that shows
/// the form posting to `{prefix}/mfa/disable` (the account page).
pub(crate) fn session_form_token(app: &App, session: &SessionRecord) -> Result<String, ProxyError> {
    Ok(app
        .auth
        .mfa
        .form_token(&[&b"s:"[..], &session.token_hash.0].concat())?)
}

/// The pending sign-in first (a sign-in under way is what the browser is
/// doing now), re-read so roles and the active flag are current; else the
/// session.
async fn enroller(app: &App, headers: &HeaderMap) -> Result<Option<Enroller>, ProxyError> {
    if let Some(pending) = pending_of(app, headers)? {
        let user = app
            .auth
            .credentials
            .find_current(&pending.identity())
            .await?;
        if let Some(user) = user.filter(|u| u.active) {
            return Ok(Some(Enroller::Pending(pending, user.identity)));
        }
    }
    let session = app
        .auth
        .session_of(&app.cookies.session_tokens(headers))
        .await?;
    Ok(session.map(Enroller::Session))
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

/// The setup page, or the status page of a factor that is on (a pending
/// sign-in with a factor goes to the code form instead).
async fn render(
    app: &App,
    who: &Enroller,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let identity = who.identity();
    let token = who.form_token(app)?;
    let required = app.auth.mfa.required(identity);
    let page = match app.auth.mfa.enrolment(identity).await? {
        Enrolment::Pending { uri, secret } => app.pages.mfa_setup(&MfaSetupView {
            action: &setup_path(app),
            csrf_token: &token,
            next,
            uri: &uri,
            secret: &secret,
            required,
            error,
        }),
        Enrolment::Enabled { .. } if matches!(who, Enroller::Pending(..)) => {
            return Ok(response::redirect(StatusCode::SEE_OTHER, &mfa_path(app)));
        }
        Enrolment::Enabled { recovery_left } => app.pages.mfa_status(&MfaStatusView {
            action: &format!("{}/mfa/disable", app.config.login.prefix),
            csrf_token: &token,
            next,
            recovery_left,
            required,
            error,
        }),
    };
    Ok(response::html(status, page))
}

/// `GET {prefix}/mfa/setup[?next=PATH]`.
pub(crate) async fn setup_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let query: NextQuery =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let Some(who) = enroller(app, req.headers()).await? else {
        let back = match query.next.as_str() {
            "" => setup_path(app),
            next => format!(
                "{}?{}",
                setup_path(app),
                serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
            ),
        };
        return Ok(response::redirect(
            StatusCode::SEE_OTHER,
            &login_url(app, &validate_next(&back)),
        ));
    };
    let next = who.next(&query.next);
    render(app, &who, StatusCode::OK, &next, None).await
}

/// `POST {prefix}/mfa/setup`: a current code turns the factor on; the
/// recovery codes are shown once. Under a pending sign-in this completes
/// it (session cookie with the recovery codes page).
pub(crate) async fn setup_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let Some(who) = enroller(app, &parts.headers).await? else {
        return expired(app, &parts.headers);
    };
    let form: CodeForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("setup form is not form-encoded"))?;
    let next = who.next(&form.next);
    let identity = who.identity().clone();
    if let Some(refused) = refuse_stale_form(app, &who, &form.csrf_token, origin, &next).await? {
        return Ok(refused);
    }
    let codes = app
        .auth
        .enable_second_factor(&identity, &form.code, origin.client_ip, &origin.request_id)
        .await?;
    let Some(codes) = codes else {
        return render(
            app,
            &who,
            StatusCode::UNAUTHORIZED,
            &next,
            Some(ENROL_WRONG),
        )
        .await;
    };
    let page = app.pages.mfa_recovery(&codes, &next);
    match who {
        Enroller::Session(_) => Ok(response::html(StatusCode::OK, page)),
        Enroller::Pending(pending, identity) => {
            app.auth
                .enrolment_sign_in(&identity, origin.client_ip, &origin.request_id)
                .await?;
            complete(app, &parts.headers, origin, &pending, identity, Some(page)).await
        }
    }
}

/// `POST {prefix}/mfa/disable`: a signed-in user turns their factor off
/// with a current code, unless a role of theirs requires it; 303 to the
/// form's `next`.
pub(crate) async fn disable_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let session = app
        .auth
        .session_of(&app.cookies.session_tokens(&parts.headers))
        .await?;
    let Some(session) = session else {
        return Ok(response::redirect(
            StatusCode::SEE_OTHER,
            &login_url(app, &setup_path(app)),
        ));
    };
    let who = Enroller::Session(session);
    let form: CodeForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("disable form is not form-encoded"))?;
    let next = who.next(&form.next);
    let identity = who.identity().clone();
    // Refused before anything is checked: nothing a form could carry
    // turns a required factor off.
    if app.auth.mfa.required(&identity) {
        return render(app, &who, StatusCode::FORBIDDEN, &next, Some(REQUIRED)).await;
    }
    if let Some(refused) = refuse_stale_form(app, &who, &form.csrf_token, origin, &next).await? {
        return Ok(refused);
    }
    let outcome = app
        .auth
        .disable_second_factor(&identity, &form.code, origin.client_ip, &origin.request_id)
        .await?;
    match outcome {
        Disable::Off => Ok(response::redirect(StatusCode::SEE_OTHER, &next)),
        Disable::Required => render(app, &who, StatusCode::FORBIDDEN, &next, Some(REQUIRED)).await,
        Disable::Failed => {
            render(app, &who, StatusCode::UNAUTHORIZED, &next, Some(WRONG_CODE)).await
        }
    }
}

/// The 403 page (and its audit event) for a form whose CSRF token is not
/// this page's; `None` when the token is good.
async fn refuse_stale_form(
    app: &App,
    who: &Enroller,
    token: &str,
    origin: &Origin,
    next: &str,
) -> Result<Option<Response<Body>>, ProxyError> {
    if who.check_form_token(app, token)? {
        return Ok(None);
    }
    app.auth.audit(
        "mfa_csrf_refused",
        &who.identity().username,
        origin.client_ip,
        &origin.request_id,
    );
    render(app, who, StatusCode::FORBIDDEN, next, Some(FORM_EXPIRED))
        .await
        .map(Some)
}
