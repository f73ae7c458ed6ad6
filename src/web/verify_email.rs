//! `GET {prefix}/verify-email?token=T` (with `registration.verify_email`):
//! the mailed link that activates a new account.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::login_path;
use super::reset::link_token;
use crate::app::App;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

/// Runs `registration.activate` for the link's account (once), then says
/// so with a link to sign in; 410 for a link that is unknown, spent or
/// expired.
pub(crate) async fn verify_email(
    app: &App,
    req: &Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let token = link_token(req.uri());
    let login = login_path(app);
    let sign_in = Some((login.as_str(), "Sign in"));
    match app
        .auth
        .verify_email(&token, origin.client_ip, &origin.request_id)
        .await?
    {
        Some(username) => {
            let message = format!("Your address is confirmed. You can now sign in as {username}.");
            let page = app
                .pages
                .notice("Your account is active", &message, sign_in);
            Ok(response::html(StatusCode::OK, page))
        }
        None => {
            let page = app.pages.notice(
                "This link no longer works",
                "Activation links work once, for a limited time. If you have used it already, your account is active: sign in.",
                sign_in,
            );
            Ok(response::html(StatusCode::GONE, page))
        }
    }
}
