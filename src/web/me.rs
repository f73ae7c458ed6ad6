//! `/auth/me`: who the caller is, for cookie and bearer callers.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::unauthenticated_json;
use crate::app::App;
use crate::auth::Caller;
use crate::web::error::ProxyError;
use crate::web::response::{self, Body};

pub(crate) async fn me(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    match app
        .auth
        .caller(&crate::web::presented(app, req.headers()))
        .await?
    {
        Some(caller) => Ok(response::json(StatusCode::OK, &me_json(&caller))),
        None => Ok(unauthenticated_json()),
    }
}

fn me_json(caller: &Caller) -> serde_json::Value {
    let expires_at = humantime::format_rfc3339_seconds(caller.expires_at).to_string();
    serde_json::json!({
        "id": caller.identity.id,
        "username": caller.identity.username,
        "email": caller.identity.email,
        "roles": caller.identity.roles,
        "auth_method": caller.auth_method,
        "expires_at": expires_at,
        "session": caller.public_id,
        // Whether the user has a second factor; none can be enrolled yet.
        "mfa": false,
    })
}
