//! `[sqlite]`, `[mfa]` and `[mail]`: the embedded store's file and what
//! users do with their own accounts (second factors, mailed links).

use std::path::PathBuf;

use base64::Engine as _;

use super::values::nonzero;
use crate::config::raw;
use crate::config::{ConfigErrors, MailConfig, MfaConfig, SqliteConfig};

pub(super) fn sqlite(raw: raw::RawSqlite, e: &mut ConfigErrors) -> SqliteConfig {
    if raw.path.is_empty() {
        e.push(
            "sqlite.path",
            "must name the database file (e.g. \"portcullis.db\")",
        );
    }
    SqliteConfig {
        path: PathBuf::from(raw.path),
    }
}

pub(super) fn mfa(raw: raw::RawMfa, e: &mut ConfigErrors) -> MfaConfig {
    if raw.issuer.trim().is_empty() || raw.issuer.contains(':') {
        e.push(
            "mfa.issuer",
            format!(
                "{:?} must be a non-empty name without ':' (authenticator apps show it)",
                raw.issuer
            ),
        );
    }
    let secret_key = match raw.secret_key.trim() {
        "" => None,
        key => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(key);
            match decoded.ok().and_then(|k| <[u8; 32]>::try_from(k).ok()) {
                Some(key) => Some(key),
                None => {
                    e.push(
                        "mfa.secret_key",
                        "must be 32 bytes in base64 (make one with `openssl rand -base64 32`)",
                    );
                    None
                }
            }
        }
    };
    MfaConfig {
        required_roles: raw.required_roles,
        issuer: raw.issuer,
        secret_key,
    }
}

pub(super) fn mail(raw: Option<raw::RawMail>, e: &mut ConfigErrors) -> Option<MailConfig> {
    let raw = raw?;
    match url::Url::parse(&raw.smtp) {
        Ok(url) if matches!(url.scheme(), "smtp" | "smtps") && url.host().is_some() => {}
        _ => e.push(
            "mail.smtp",
            "must be a URL like \"smtp://127.0.0.1:25\" (STARTTLS when offered) or \"smtps://user:pass@mail.example.com\"",
        ),
    }
    // The parser the mailer uses: what passes here can be sent from.
    let parses = raw.from.parse::<lettre::message::Mailbox>().is_ok();
    if !parses || raw.from.contains(['\r', '\n']) {
        e.push(
            "mail.from",
            format!(
                "{:?} must be an address like \"portcullis <no-reply@example.com>\"",
                raw.from
            ),
        );
    }
    Some(MailConfig {
        smtp: raw.smtp,
        from: raw.from,
        reset_ttl: nonzero(e, "mail.reset_ttl", raw.reset_ttl),
    })
}
