//! Forward-auth (`/auth/verify`) for nginx `auth_request`, Traefik
//! ForwardAuth and Caddy `forward_auth`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::unauthenticated_json;
use crate::app::App;
use crate::policy::routes::Verdict;
use crate::web::error::ProxyError;
use crate::web::forwarded::Origin;
use crate::web::identity::set_identity;
use crate::web::response::{self, Body};

/// `GET {prefix}/verify`: forward-auth for nginx `auth_request`, Traefik
/// ForwardAuth and Caddy `forward_auth`. The original method and URI come
/// from `forward_auth.method_header` / `uri_header` of a trusted proxy only
/// (see [`super::forward`]); anyone else is judged as `GET /`. The same
/// route rules apply; 200 carries the identity headers.
pub(crate) async fn verify(
    app: &App,
    req: &Request<Incoming>,
    origin: &Origin,
) -> Result<Response<Body>, ProxyError> {
    let headers = req.headers();
    let original = super::forward_auth::original_request(
        headers,
        &app.config.forward_auth,
        origin.from_trusted_proxy,
    )
    .map_err(|e| {
        // A trusted proxy sending these wrong is a proxy config to fix.
        tracing::warn!(request_id = %origin.request_id, client = %origin.client_ip, error = %e, "forward-auth request refused");
        ProxyError::BadRequest("forward-auth headers missing, duplicated or malformed")
    })?;
    // A WebSocket handshake is judged like the proxy judges one: from a
    // foreign page's Origin it is refused (the front proxy passes the
    // client's `Upgrade` and `Origin` on; see deploy/forward-auth/).
    if wants_websocket(headers) && !super::websocket_origin_allowed(app, headers, origin) {
        tracing::info!(request_id = %origin.request_id, "forward-auth: WebSocket from a foreign Origin refused");
        return Err(ProxyError::Forbidden);
    }
    let path = crate::policy::path::normalize(&original.path)?;
    let routes = app.routes.load_full();
    let access = routes.access(&original.method, &crate::policy::path::routing_path(&path));
    let caller = if access.needs_caller() {
        app.auth
            .caller(&crate::web::presented(app, headers))
            .await?
    } else {
        None
    };
    let roles = caller.as_ref().map(|c| c.identity.roles.as_slice());
    match crate::policy::routes::decide(access, roles) {
        Verdict::Allow => {}
        Verdict::Unauthenticated => return Ok(unauthenticated_json()),
        Verdict::Forbidden => return Err(ProxyError::Forbidden),
    }
    let mut response = response::json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    if let Some(caller) = caller {
        set_identity(
            response.headers_mut(),
            &app.config.upstream.headers,
            &caller,
        );
    }
    Ok(response)
}

/// True when the request being judged asks for a WebSocket (`Upgrade:
/// websocket`, as the front proxy passes it on).
fn wants_websocket(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}
