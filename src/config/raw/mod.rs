//! The first stage of config loading: `proxy.toml` as written, with serde
//! defaults and unknown keys refused. Durations and closed sets of words
//! (stores, backends, algorithms, formats) are typed here, so a bad one is
//! refused with its key before anything else; what needs the whole file or
//! the disk is checked by `config::validate`, the second stage.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod accounts;
mod edges;
mod server;
mod stores;

pub(crate) use accounts::*;
pub(crate) use edges::*;
pub(crate) use server::*;
pub(crate) use stores::*;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// humantime's syntax (`"30s"`, `"12h"`, `"7d"`), with a message that shows
/// the value and the form expected.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\", \"30m\" or \"12h\""
        ))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    pub upstream: RawUpstream,
    pub session: RawSession,
    pub sqlite: RawSqlite,
    pub postgres: RawPostgres,
    pub credentials: RawCredentials,
    pub login: RawLogin,
    pub registration: RawRegistration,
    pub mfa: RawMfa,
    pub mail: Option<RawMail>,
    pub tokens: RawTokens,
    pub forward_auth: RawForwardAuth,
    pub audit: RawAudit,
    pub sso: RawSso,
    pub route: Vec<RawRoute>,
    pub log: RawLog,
}

impl RawConfig {
    /// Makes every relative file path absolute from `base`, the directory of
    /// the config file: `portcullis serve --config /etc/portcullis/proxy.toml`
    /// then finds `users.toml` beside it from any working directory.
    pub(crate) fn resolve_paths(&mut self, base: &std::path::Path) {
        let resolve = |path: &mut String| {
            let relative = !path.is_empty() && std::path::Path::new(path.as_str()).is_relative();
            if relative && !base.as_os_str().is_empty() {
                *path = base.join(path.as_str()).to_string_lossy().into_owned();
            }
        };
        resolve(&mut self.credentials.file.path);
        resolve(&mut self.login.template);
        resolve(&mut self.sqlite.path);
        if let Some(tls) = &mut self.server.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(assertion) = &mut self.upstream.assertion {
            resolve(&mut assertion.key);
        }
        for partner in &mut self.sso.partners {
            resolve(&mut partner.key);
        }
    }
}
