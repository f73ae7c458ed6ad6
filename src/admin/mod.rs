//! The admin listener (`admin.listen`, loopback by default): `/healthz`
//! (process alive), `/readyz` (200 only when every backend answers) and
//! `/metrics` (Prometheus text).

use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::server::{serve_listener, Limits, Listener};
use crate::web::forwarded::Connection;
use crate::web::response::{self, Body};

/// Serves the admin endpoints with the same connection limits as the
/// proxy listener (`[server]`): a scrape client that stalls cannot hold a
/// connection longer than a browser could.
pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let limits = Limits::of(&app.config.server);
    let listener = Listener {
        name: "admin",
        socket: listener,
        tls: None,
        open_gauge: None,
        slots: Arc::new(Semaphore::new(app.config.server.max_connections)),
    };
    let handler = move |req: Request<Incoming>, _: Connection| {
        let app = app.clone();
        async move { route(&app, &req).await }
    };
    serve_listener(listener, limits, handler, shutdown).await;
}

async fn route(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "method_not_allowed"}),
        );
    }
    match req.uri().path() {
        "/healthz" => response::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" => readyz(app).await,
        "/metrics" => {
            let mut response = Response::new(response::full(app.metrics.render()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => response::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found"}),
        ),
    }
}

/// Pings every backend; names the ones that failed.
async fn readyz(app: &App) -> Response<Body> {
    let mut failing = Vec::new();
    if let Err(e) = app.auth.sessions.store().ping().await {
        tracing::warn!(error = %e, "readiness: session store is not answering");
        failing.push("session_store");
    }
    if let Err(e) = app.auth.credentials.ping().await {
        tracing::warn!(error = %e, "readiness: credential backend is not answering");
        failing.push("credentials");
    }
    if let Err(e) = app.auth.tokens.check_ready() {
        // Bearer tokens cannot be checked yet (shared key or revoked
        // families not loaded): they would get 503s.
        tracing::warn!(reason = %e, "readiness: bearer tokens cannot be checked");
        failing.push("tokens");
    }
    if failing.is_empty() {
        response::json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
    } else {
        response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "failing": failing}),
        )
    }
}
