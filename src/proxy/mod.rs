//! The request pipeline, one named phase per step of SPEC's request flow:
//! normalize -> own endpoints -> strip -> authorize -> rewrite -> forward.
//! Each phase can short-circuit with a response.

pub(crate) mod assertion;
pub(crate) mod forward;
pub(crate) mod headers;
mod slots;

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderName, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::App;
use crate::auth::Caller;
use crate::policy::path::{normalize, routing_path};
use crate::policy::routes::{decide, Verdict};
use crate::web::error::ProxyError;
use crate::web::forwarded::{Connection, Origin};
use crate::web::response::{self, Body};
use crate::web::{login_url, unauthenticated_json};
use headers::{python_name, FORWARDING_HEADERS};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Assertion header name stripped even before `[upstream.assertion]` is
/// configured, so a client can never pre-place one.
const DEFAULT_ASSERTION_HEADER: &str = "X-Auth-Assertion";

/// The pipeline's own state, built once per worker thread beside the shared
/// [`App`]: the worker's pooled upstream client and the header names no
/// client may send the app.
pub(crate) struct Pipeline {
    pub(crate) upstream: forward::Upstream,
    /// Python spellings of every header a client may not pass to the app.
    spoofable: Vec<String>,
}

impl Pipeline {
    /// `upstream_slots` caps the upstream connections of every worker together.
    pub(crate) fn new(
        config: &crate::config::Config,
        upstream_slots: forward::UpstreamSlots,
    ) -> Self {
        let headers = &config.upstream.headers;
        let mut spoofable: Vec<String> = [
            headers.user.as_str(),
            headers.email.as_str(),
            headers.roles.as_str(),
            headers.session.as_str(),
        ]
        .into_iter()
        .chain([DEFAULT_ASSERTION_HEADER])
        .chain(
            config
                .upstream
                .assertion
                .as_ref()
                .map(|a| a.header.as_str()),
        )
        .chain(FORWARDING_HEADERS.iter().copied())
        .map(python_name)
        .collect();
        spoofable.sort();
        spoofable.dedup();
        Self {
            upstream: forward::Upstream::new(
                &config.upstream,
                config.server.body_read_timeout,
                upstream_slots,
            ),
            spoofable,
        }
    }
}

/// Serves one request; never fails (errors become pages or JSON).
pub(crate) async fn handle(
    app: &App,
    state: &Pipeline,
    req: Request<Incoming>,
    conn: Connection,
) -> Response<Body> {
    let started = Instant::now();
    let origin = Origin::from_request(
        conn.peer,
        conn.tls,
        req.uri(),
        req.headers(),
        &app.config.server.trusted_proxies,
    );
    let method = req.method().clone();
    let wants_html = response::wants_html(req.headers());
    let raw_path = req.uri().path().to_string();

    let mut response = match pipeline(app, state, req, &origin, conn.slot).await {
        Ok(response) => response,
        Err(e) => error_response(app, &e, wants_html, &origin),
    };
    if !response.headers().contains_key(&X_REQUEST_ID) {
        if let Ok(id) = HeaderValue::from_str(&origin.request_id) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
        }
    }
    app.metrics
        .record_request(response.status().as_u16(), started.elapsed().as_secs_f64());
    if app.config.log.access_log {
        tracing::info!(
            target: "portcullis::access",
            request_id = %origin.request_id,
            client_ip = %origin.client_ip,
            method = %method,
            path = %raw_path,
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
}

async fn pipeline(
    app: &App,
    state: &Pipeline,
    mut req: Request<Incoming>,
    origin: &Origin,
    slot: Option<Arc<OwnedSemaphorePermit>>,
) -> Result<Response<Body>, ProxyError> {
    // normalize
    if req.method() == http::Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    let path = normalize(req.uri().path())?;

    // own endpoints
    let prefix = &app.config.login.prefix;
    if path
        .strip_prefix(prefix.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        // Boxed: the sign-in pages' state would otherwise make every
        // proxied request's future several kilobytes larger.
        return Box::pin(crate::web::handle(app, req, &path, origin)).await;
    }

    // strip
    let websocket = headers::is_websocket_upgrade(req.method(), req.version(), req.headers());
    if websocket && !crate::web::websocket_origin_allowed(app, req.headers(), origin) {
        tracing::info!(request_id = %origin.request_id, "WebSocket upgrade from a foreign Origin refused");
        return Err(ProxyError::Forbidden);
    }
    headers::strip_hop_by_hop(req.headers_mut(), websocket);
    headers::strip_spoofable(req.headers_mut(), &state.spoofable);

    // authenticate (only where the rule needs a caller)
    let routes = app.routes.load_full();
    let access = routes.access(req.method(), &routing_path(&path));
    let caller = if access.needs_caller() {
        app.auth
            .caller(&crate::web::presented(app, req.headers()))
            .await?
    } else {
        None
    };

    // authorize
    let roles = caller.as_ref().map(|c| c.identity.roles.as_slice());
    let identity = match decide(access, roles) {
        Verdict::Allow => caller,
        Verdict::Unauthenticated => return Ok(unauthenticated(app, &req)),
        Verdict::Forbidden if caller.as_ref().is_some_and(|c| c.session.is_some()) => {
            return Err(ProxyError::ForbiddenSignedIn)
        }
        Verdict::Forbidden => return Err(ProxyError::Forbidden),
    };

    // rewrite
    rewrite(app, &mut req, &path, identity.as_ref(), origin)?;

    // forward
    state.upstream.forward(req, websocket, slot).await
}

/// SPEC step 6: a browser navigation is sent to the sign-in page; anything
/// else gets a 401 it can act on.
fn unauthenticated(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if response::is_navigation(req.method(), req.headers()) {
        let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
        response::redirect(StatusCode::FOUND, &login_url(app, next))
    } else {
        unauthenticated_json()
    }
}

/// Sets the normalized path and the headers the app trusts.
fn rewrite(
    app: &App,
    req: &mut Request<Incoming>,
    path: &str,
    caller: Option<&Caller>,
    origin: &Origin,
) -> Result<(), ProxyError> {
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| ProxyError::BadRequest("unforwardable path"))?,
    );
    *req.uri_mut() =
        http::Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest("unforwardable URI"))?;

    let names = &app.config.upstream.headers;
    let headers = req.headers_mut();
    let pass_ours = app.config.upstream.pass_session_cookie;
    app.cookies.prepare_for_upstream(headers, pass_ours);
    if let Some(caller) = caller {
        if caller.bearer && !pass_ours {
            // Our access token is for portcullis, not for the app.
            headers.remove(http::header::AUTHORIZATION);
        }
        crate::web::identity::set_identity(headers, names, caller);
        if let Some(config) = app.assertion.load().as_deref() {
            let signed = assertion::sign(config, &caller.identity, &origin.request_id)
                .map_err(ProxyError::AssertionUnsigned)?;
            headers.insert(config.header.clone(), signed);
        }
    }
    let set = |headers: &mut http::HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(headers, "x-forwarded-for", &origin.client_ip.to_string());
    set(headers, "x-forwarded-proto", origin.proto);
    if let Some(host) = &origin.host {
        set(headers, "x-forwarded-host", host);
    }
    set(headers, "x-request-id", &origin.request_id);
    Ok(())
}

/// The one place a request-path error becomes a response. The internal
/// detail is logged, never sent.
fn error_response(app: &App, e: &ProxyError, wants_html: bool, origin: &Origin) -> Response<Body> {
    let status = StatusCode::from(e);
    if status.is_server_error() {
        tracing::warn!(request_id = %origin.request_id, error = %e, status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(request_id = %origin.request_id, error = %e, status = status.as_u16(), "request refused");
    }
    let (code, heading, message) = e.public_text();
    let mut response = if wants_html {
        // The user is known: their account page is one click away.
        let account =
            matches!(e, ProxyError::ForbiddenSignedIn).then(|| crate::web::account_path(app));
        let page = app.pages.error(
            status.as_u16(),
            heading,
            message,
            &origin.request_id,
            account.as_deref(),
        );
        response::html(status, page)
    } else {
        response::json(status, &serde_json::json!({ "error": code }))
    };
    if let Some(seconds) = e.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    debug_assert!(response.headers().contains_key(CONTENT_TYPE));
    response
}
