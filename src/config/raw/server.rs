//! `[server]`, `[admin]` and `[upstream]` as written.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, secs, MINUTE};
use crate::config::words::AssertionAlgorithm;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    pub max_header_bytes: u64,
    pub max_connections: u64,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    pub h2_max_streams: u32,
    pub websocket_origins: Vec<String>,
    pub tls: Option<RawTls>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            header_read_timeout: secs(10),
            max_header_bytes: 65536,
            max_connections: 10000,
            shutdown_grace: secs(30),
            body_read_timeout: secs(30),
            keepalive_timeout: secs(75),
            h2_max_streams: 100,
            websocket_origins: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub redirect_http_from: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub url: String,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub response_header_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub pool_idle_timeout: Duration,
    pub pass_session_cookie: bool,
    pub max_connections: u32,
    #[serde(deserialize_with = "duration")]
    pub tunnel_idle_timeout: Duration,
    pub headers: RawIdentityHeaders,
    pub assertion: Option<RawAssertion>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8000".into(),
            connect_timeout: secs(5),
            response_header_timeout: secs(60),
            pool_idle_timeout: secs(4),
            pass_session_cookie: false,
            max_connections: 1024,
            tunnel_idle_timeout: secs(10 * MINUTE),
            headers: RawIdentityHeaders::default(),
            assertion: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIdentityHeaders {
    pub user: String,
    pub email: String,
    pub roles: String,
    pub session: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        Self {
            user: "X-Auth-User".into(),
            email: "X-Auth-Email".into(),
            roles: "X-Auth-Roles".into(),
            session: "X-Auth-Session".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    #[serde(default = "default_assertion_header")]
    pub header: String,
    #[serde(default = "default_assertion_algorithm")]
    pub algorithm: AssertionAlgorithm,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    pub audience: String,
}

fn default_assertion_header() -> String {
    "X-Auth-Assertion".into()
}

fn default_assertion_algorithm() -> AssertionAlgorithm {
    AssertionAlgorithm::EdDSA
}
