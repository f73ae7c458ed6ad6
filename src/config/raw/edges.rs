//! `[forward_auth]`, `[[sso.partners]]`, `[[route]]` and `[log]` as written.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, secs, MINUTE};
use crate::config::LogFormat;
use crate::policy::routes::RuleAccess;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawForwardAuth {
    pub uri_header: String,
    pub method_header: String,
}

impl Default for RawForwardAuth {
    fn default() -> Self {
        Self {
            uri_header: "X-Forwarded-Uri".into(),
            method_header: "X-Forwarded-Method".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSso {
    pub partners: Vec<RawPartner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPartner {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default = "default_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
    #[serde(default = "default_clock_skew", deserialize_with = "duration")]
    pub clock_skew: Duration,
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    #[serde(default = "default_true")]
    pub require_known_user: bool,
    #[serde(default)]
    pub require_mfa: bool,
}

fn default_max_age() -> Duration {
    secs(2 * MINUTE)
}

fn default_clock_skew() -> Duration {
    secs(30)
}

fn default_user_claim() -> String {
    "email".into()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub access: Option<RuleAccess>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub format: LogFormat,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            access_log: true,
        }
    }
}
