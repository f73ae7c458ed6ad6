//! Sign-out: a page with a button (GET never signs out) and its POST,
//! which needs the page's CSRF token or a same-origin `Origin`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{csrf_nonce_or_new, login_path, read_form_body, same_origin};
use crate::app::App;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

/// The sign-out page: a button, never a sign-out by GET. Without a session
/// the button just clears the cookie and leads to the sign-in page; its
/// token is then bound to the browser's CSRF nonce, as the sign-in form's.
pub(crate) async fn logout_form(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let session = app
        .auth
        .session_of(&app.cookies.session_tokens(req.headers()))
        .await?;
    let username = session
        .as_ref()
        .map_or("", |s| s.identity.username.as_str());
    let action = format!("{}/logout", app.config.login.prefix);
    let (token, new_nonce) = match &session {
        Some(session) => (app.auth.csrf.logout_token(&session.token_hash)?, None),
        None => {
            let (nonce, fresh) = csrf_nonce_or_new(app, req.headers());
            (app.auth.csrf.login_token(&nonce)?, fresh.then_some(nonce))
        }
    };
    let account = session.is_some().then(|| super::account_path(app));
    let page = app
        .pages
        .logout(&action, &token, username, account.as_deref());
    let mut response = response::html(StatusCode::OK, page);
    if let Some(nonce) = new_nonce {
        crate::web::cookies::append_set_cookie(response.headers_mut(), app.cookies.csrf(&nonce));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST {prefix}/logout`. A browser must show the page's CSRF token or a
/// same-origin `Origin`, with or without a session: a cross-site POST
/// carries no `SameSite=Lax` cookie but its response's `Set-Cookie` would
/// still apply, so answering it would let any site sign users out. A
/// bearer client's `Authorization` header is proof enough (no browser
/// sends one cross-site on its own).
pub(crate) async fn logout_submit(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let caller = app
        .auth
        .caller(&crate::web::presented(app, &parts.headers))
        .await?;
    let bearer = caller.as_ref().is_some_and(|c| c.bearer);
    if !bearer && !same_origin(app, &parts.headers, origin) {
        let token = serde_urlencoded::from_bytes::<LogoutForm>(&body)
            .map(|f| f.csrf_token)
            .unwrap_or_default();
        let token_ok = match caller.as_ref().and_then(|c| c.session.as_ref()) {
            Some(session) => app.auth.csrf.check_logout(session, &token)?,
            None => match app.cookies.csrf_nonce(&parts.headers) {
                Some(nonce) => app.auth.csrf.check_login(&nonce, &token)?,
                None => false,
            },
        };
        if !token_ok {
            let user = caller.as_ref().map_or("", |c| c.identity.username.as_str());
            app.auth.audit(
                "logout_csrf_refused",
                user,
                origin.client_ip,
                &origin.request_id,
            );
            return Err(ProxyError::Forbidden);
        }
    }
    if let Some(caller) = &caller {
        if let Some(family) = &caller.family {
            app.auth.tokens.revoke_family(family).await?;
        }
        if let Some(session) = &caller.session {
            app.auth.sessions.revoke(session).await?;
        }
        app.auth.audit(
            "logout",
            &caller.identity.username,
            origin.client_ip,
            &origin.request_id,
        );
    }
    let mut response = response::redirect(StatusCode::SEE_OTHER, &login_path(app));
    crate::web::cookies::append_set_cookie(response.headers_mut(), app.cookies.clear_session());
    Ok(response)
}
