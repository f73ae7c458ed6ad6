//! The sign-in page and its POST: the form with its multi-tab CSRF token,
//! the password check, and the session a success starts.

use http::header::{self};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{csrf_nonce_or_new, is_json, login_path, read_form_body, set_retry_after};
use crate::app::App;
use crate::auth::session::SignInFrom;
use crate::auth::LoginOutcome;
use crate::pages::LoginView;
use crate::policy::next::validate_next;
use crate::store::{AuthMethod, Identity};
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

const GENERIC_FAILURE: &str = "Incorrect username or password.";
const FORM_EXPIRED: &str = "This sign-in form has expired. Please try again.";
pub(crate) const TOO_MANY: &str = "Too many sign-in attempts. Please wait a moment and try again.";

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

pub(crate) async fn login_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let query: NextQuery =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let next = validate_next(&query.next);
    if app
        .auth
        .session_of(&app.cookies.session_tokens(req.headers()))
        .await?
        .is_some()
    {
        return Ok(response::redirect(StatusCode::SEE_OTHER, &next));
    }
    render_login(app, req.headers(), StatusCode::OK, &next, "", None)
}

/// The sign-in form, reusing the browser's CSRF nonce cookie when it has one
/// so that other open tabs keep working.
fn render_login(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let (nonce, fresh) = csrf_nonce_or_new(app, headers);
    let token = app.auth.csrf.login_token(&nonce)?;
    let action = login_path(app);
    let page = app.pages.login(&LoginView {
        action: &action,
        csrf_token: &token,
        next,
        username,
        error,
    });
    let mut response = response::html(status, page);
    if fresh {
        crate::web::cookies::append_set_cookie(response.headers_mut(), app.cookies.csrf(&nonce));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

pub(crate) async fn login_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    if is_json(&parts.headers) {
        return super::tokens::json_login(app, &body, origin).await;
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ProxyError::BadRequest("login form is not form-encoded"))?;
    let next = validate_next(&form.next);

    let nonce = app.cookies.csrf_nonce(&parts.headers);
    let csrf_ok = match nonce.as_deref() {
        Some(n) => app.auth.csrf.check_login(n, &form.csrf_token)?,
        None => false,
    };
    if !csrf_ok {
        app.auth.audit(
            "login_csrf_refused",
            "",
            origin.client_ip,
            &origin.request_id,
        );
        let mut headers = parts.headers.clone();
        headers.remove(header::COOKIE);
        return render_login(
            app,
            &headers,
            StatusCode::FORBIDDEN,
            &next,
            &form.username,
            Some(FORM_EXPIRED),
        );
    }

    let outcome = app
        .auth
        .password_login(
            form.username.trim(),
            &form.password,
            origin.client_ip,
            &origin.request_id,
        )
        .await?;
    let identity = match outcome {
        LoginOutcome::Success(identity) => identity,
        LoginOutcome::Failed => {
            return render_login(
                app,
                &parts.headers,
                StatusCode::UNAUTHORIZED,
                &next,
                &form.username,
                Some(GENERIC_FAILURE),
            );
        }
        LoginOutcome::RateLimited(wait) => {
            let mut response = render_login(
                app,
                &parts.headers,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &form.username,
                Some(TOO_MANY),
            )?;
            set_retry_after(&mut response, wait);
            return Ok(response);
        }
    };

    start_session(
        app,
        &parts.headers,
        origin,
        identity,
        AuthMethod::Password,
        &next,
    )
    .await
}

/// Signs the browser in: any session it arrived with is discarded (no
/// fixation), a new one is created, and it is sent on to `next`.
pub(crate) async fn start_session(
    app: &App,
    headers: &HeaderMap,
    origin: &Origin,
    identity: Identity,
    method: AuthMethod,
    next: &str,
) -> Result<Response<Body>, ProxyError> {
    for token in app.cookies.session_tokens(headers) {
        app.auth
            .sessions
            .revoke(&crate::auth::session::hash_token(&token))
            .await?;
    }
    let from = SignInFrom {
        ip: origin.client_ip,
        user_agent: headers.get(header::USER_AGENT).map(|v| v.as_bytes()),
    };
    let (token, _) = app.auth.sessions.create(identity, method, from).await?;
    let mut response = response::redirect(StatusCode::SEE_OTHER, next);
    crate::web::cookies::append_set_cookie(response.headers_mut(), app.cookies.session(&token));
    Ok(response)
}
