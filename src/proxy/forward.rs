//! Forwarding to the app: one pooled HTTP/1.1 client built at start, bodies
//! streamed both ways, WebSocket upgrades tunnelled only once the app has
//! answered 101.

use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::OwnedSemaphorePermit;

use super::error::ProxyError;
use super::headers::strip_hop_by_hop;
use crate::config::UpstreamConfig;
use crate::response::Body;

pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
    config: UpstreamConfig,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            config: config.clone(),
        }
    }

    /// Sends `req` (its path already normalized, headers already rewritten)
    /// to the app and returns the app's response with hop-by-hop headers
    /// removed.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        websocket: bool,
        slot: Option<Arc<OwnedSemaphorePermit>>,
    ) -> Result<Response<Body>, ProxyError> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri = Uri::builder()
            .scheme(self.config.scheme.clone())
            .authority(self.config.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadRequest("unforwardable URI"))?;
        if !req.headers().contains_key(HOST) {
            // HTTP/2 clients send :authority instead of Host.
            if let Some(authority) = req.uri().authority() {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    req.headers_mut().insert(HOST, v);
                }
            }
        }
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_11;
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

        let timeout = self.config.response_header_timeout;
        let mut response = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => return Err(ProxyError::UpstreamTimeout(timeout)),
            Ok(Err(e)) => return Err(ProxyError::UpstreamUnreachable(Box::new(e))),
            Ok(Ok(response)) => response,
        };

        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client_upgrade) if upgraded => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(tunnel(client_upgrade, upstream_upgrade, slot));
                strip_hop_by_hop(response.headers_mut(), true);
            }
            _ if upgraded => {
                // The app switched protocols without being asked to: refuse.
                return Err(ProxyError::UpstreamUnreachable(
                    "unexpected 101 from upstream".into(),
                ));
            }
            _ => strip_hop_by_hop(response.headers_mut(), false),
        }
        Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
    }
}

/// Copies bytes both ways between the upgraded client and app connections
/// until either side closes, holding the connection's `max_connections`
/// slot meanwhile.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _slot: Option<Arc<OwnedSemaphorePermit>>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "websocket tunnel closed with an error");
    }
}
