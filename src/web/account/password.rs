//! `POST {prefix}/account/password`: the signed-in user changes their
//! password, when `credentials.mysql.password_update` is set (404
//! otherwise, like any endpoint that does not exist).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{back_to_account, read_post, render};
use crate::app::App;
use crate::auth::account::{PasswordChange, Requester};
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::Body;
use crate::web::set_retry_after;

const NOT_CHANGED: &str = "Your password was not changed.";
const WRONG_CURRENT: &str =
    "Your password was not changed: the current password is not correct, or there were too many attempts. Please try again later.";
const TOO_MANY: &str = "Too many attempts. Please wait a moment and try again.";

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// Form `current_password`, `new_password`, `csrf_token`: 303 back to the
/// account page when changed; the page again with 401 for a wrong current
/// password (counted towards the lockout like a failed sign-in), 422 with
/// every reason for a new password the policy refuses, 429 over the per-IP
/// rate.
pub(crate) async fn change_password(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    if !app.auth.credentials.can_set_password() {
        return Err(ProxyError::NotFound);
    }
    let post = match read_post(app, req, origin).await? {
        Ok(post) => post,
        Err(answer) => return Ok(answer),
    };
    let form: PasswordForm = serde_urlencoded::from_bytes(&post.body)
        .map_err(|_| ProxyError::BadRequest("password form is not form-encoded"))?;
    let requester = Requester {
        session: &post.session,
        client_ip: origin.client_ip,
        request_id: &origin.request_id,
    };
    let outcome = app
        .auth
        .change_password(
            &requester,
            &form.current_password,
            &form.new_password,
            app.config.password_policy,
        )
        .await?;
    let session = &post.session;
    match outcome {
        PasswordChange::Changed => Ok(back_to_account(app, "password")),
        PasswordChange::WrongCurrent => {
            render(
                app,
                session,
                StatusCode::UNAUTHORIZED,
                None,
                Some(WRONG_CURRENT),
                &[],
            )
            .await
        }
        PasswordChange::Weak(problems) => {
            let reasons: Vec<String> = problems
                .iter()
                .map(|p| format!("The new password {p}."))
                .collect();
            render(
                app,
                session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(NOT_CHANGED),
                &reasons,
            )
            .await
        }
        PasswordChange::RateLimited(wait) => {
            let mut response = render(
                app,
                session,
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Some(TOO_MANY),
                &[],
            )
            .await?;
            set_retry_after(&mut response, wait);
            Ok(response)
        }
    }
}
