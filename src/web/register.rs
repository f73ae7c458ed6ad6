//! Self-service sign-up (`[registration]`) into the MySQL users table.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::{is_json, read_form_body, same_origin, set_retry_after};
use crate::app::App;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::response::{self, Body};

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST {prefix}/register` (JSON or form), when `registration.enabled`:
/// 201, 409 for a taken username or email, 422 with every reason otherwise.
/// With `registration.verify_email`, the new account's activation link is
/// mailed to it.
pub(crate) async fn register(
    app: &App,
    req: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let Some(registration) = &app.config.registration else {
        return Err(ProxyError::NotFound);
    };
    let (parts, body) = req.into_parts();
    let body = read_form_body(app, &parts.headers, body).await?;
    let form: Option<Registration> = if is_json(&parts.headers) {
        serde_json::from_slice(&body).ok()
    } else if same_origin(app, &parts.headers, origin) {
        // A form post must come from our own pages, not a cross-site form.
        serde_urlencoded::from_bytes(&body).ok()
    } else {
        return Err(ProxyError::Forbidden);
    };
    let Some(form) = form else {
        return Ok(response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request"}),
        ));
    };
    let (username, email) = (form.username.trim(), form.email.trim());
    // Sign-ups share the sign-in rate limit, so they cannot be used to probe.
    if let Some(wait) = app
        .auth
        .throttle
        .login_attempt(
            &crate::auth::rate_key(origin.client_ip),
            app.config.login.ip_rate,
        )
        .await?
    {
        let mut response = response::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "rate_limited"}),
        );
        set_retry_after(&mut response, wait);
        return Ok(response);
    }
    let mut reasons = crate::auth::register::identity_problems(username, email);
    reasons.extend(
        crate::auth::register::password_problems(
            &form.password,
            username,
            email,
            app.config.password_policy.min,
            app.config.password_policy.max,
        )
        .into_iter()
        .map(|r| format!("password {r}")),
    );
    if !reasons.is_empty() {
        return Ok(response::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({"error": "invalid_registration", "reasons": reasons}),
        ));
    }
    let taken = json_taken();
    let credentials = &app.auth.credentials;
    if credentials.find_by_login(username).await?.is_some()
        || credentials.find_by_login(email).await?.is_some()
    {
        return Ok(taken);
    }
    let hash = app
        .auth
        .verifier
        .hash(&form.password)
        .await?
        .ok_or(ProxyError::Internal("could not hash the password".into()))?;
    if !credentials
        .insert_user(&registration.insert, username, email, &hash)
        .await?
    {
        return Ok(taken);
    }
    app.auth
        .audit("register", username, origin.client_ip, &origin.request_id);
    // With verify_email the operator's INSERT made the account inactive;
    // the mailed link activates it.
    let verify = app.auth.verifies_email();
    if verify {
        app.auth
            .mail_verification(username, origin.client_ip, &origin.request_id)
            .await;
    }
    Ok(response::json(
        StatusCode::CREATED,
        &serde_json::json!({"username": username, "email": email, "verify_email": verify}),
    ))
}

fn json_taken() -> Response<Body> {
    response::json(StatusCode::CONFLICT, &serde_json::json!({"error": "taken"}))
}
