//! The plain-HTTP listener of `server.tls.redirect_http_from`: every
//! request is sent over https with a 308.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{serve_listener, Limits, Listener};
use crate::app::App;
use crate::web::forwarded::Connection;
use crate::web::response::{self, Body};

/// Plain-HTTP listener (`server.tls.redirect_http_from`) that sends every
/// request over https with a 308: to `server.public_url` when set (so a
/// forged `Host` cannot redirect elsewhere), else to the request's host.
/// Same limits as the main listener.
pub async fn run_https_redirect(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let origin: Option<Arc<str>> = app
        .config
        .server
        .public_url
        .as_ref()
        .map(|u| Arc::from(u.origin.as_str()));
    let listener = Listener {
        name: "https redirect",
        socket: listener,
        tls: None,
        open_gauge: None,
        slots: Arc::new(Semaphore::new(app.config.server.max_connections)),
    };
    let handler = move |req: Request<Incoming>, _: Connection| {
        let response = https_redirect(&req, origin.as_deref());
        async move { response }
    };
    serve_listener(listener, Limits::of(&app.config.server), handler, shutdown).await;
}

fn https_redirect(req: &Request<Incoming>, public_origin: Option<&str>) -> Response<Body> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    if let Some(origin) = public_origin.filter(|o| o.starts_with("https://")) {
        return response::redirect(StatusCode::PERMANENT_REDIRECT, &format!("{origin}{path}"));
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    let Some(host) = host else {
        return response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "bad_request"}),
        );
    };
    // The https listener's port is not known here; browsers use 443.
    let host = match host.rsplit_once(':') {
        Some((name, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (name.ends_with(']') || !name.contains(':')) =>
        {
            name
        }
        _ => host,
    };
    response::redirect(
        StatusCode::PERMANENT_REDIRECT,
        &format!("https://{host}{path}"),
    )
}
