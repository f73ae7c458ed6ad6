//! The second stage of config loading: `RawConfig` -> [`Config`], one file
//! per section. Collects every problem, each as `key.path: what is wrong
//! (value)`, so an operator fixes the whole file in one pass; checks that
//! span sections (secrets that must differ) are here.

mod accounts;
mod credentials;
mod login;
mod routes;
mod server;
mod session;
mod sso;
mod tokens;
mod upstream;
mod values;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::values::{header_name, nonzero};
use super::raw::RawConfig;
use super::{
    AuditConfig, Config, ConfigErrors, ForwardAuthConfig, LogConfig, RegistrationConfig,
    SsoPartner, TokensConfig,
};

pub(crate) fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut e = ConfigErrors::default();
    let server = server::server(raw.server, &mut e);
    let admin = server::admin(raw.admin, &mut e);
    let (upstream, assertion_secret) = upstream::upstream(raw.upstream, &mut e);
    let session = session::session(raw.session, &mut e);
    let postgres = session::postgres(raw.postgres, session.store, &mut e);
    let credentials = credentials::credentials(raw.credentials, &mut e);
    let login = login::login(raw.login, &mut e);
    let tokens = tokens::tokens(raw.tokens, &mut e);
    let sso = sso::partners(raw.sso.partners, &mut e);
    let password_policy = credentials::password_policy(&raw.registration, &credentials, &mut e);
    let registration = credentials::registration(raw.registration, &credentials, &mut e);
    let sqlite = accounts::sqlite(raw.sqlite, &mut e);
    let mfa = accounts::mfa(raw.mfa, &mut e);
    let mail = accounts::mail(raw.mail, &mut e);
    if registration.as_ref().is_some_and(|r| r.activate.is_some()) && mail.is_none() {
        e.push(
            "registration.verify_email",
            "needs a [mail] section: the activation link is mailed",
        );
    }
    if mail.is_some() && server.public_url.is_none() {
        e.push(
            "server.public_url",
            "is required with [mail]: mailed links are absolute (never built from the request's Host header)",
        );
    }
    sign_up_keeps_sso_safe(registration.as_ref(), &sso, &mut e);
    secrets_differ(&tokens, &sso, assertion_secret.as_deref(), &mut e);
    let forward_auth = ForwardAuthConfig {
        uri_header: header_name(
            &mut e,
            "forward_auth.uri_header",
            &raw.forward_auth.uri_header,
        ),
        method_header: header_name(
            &mut e,
            "forward_auth.method_header",
            &raw.forward_auth.method_header,
        ),
    };
    let audit = AuditConfig {
        retention: nonzero(&mut e, "audit.retention", raw.audit.retention),
    };
    let routes = routes::routes(raw.route, &mut e);
    let log = LogConfig {
        format: raw.log.format,
        access_log: raw.log.access_log,
    };
    let config = Config {
        server,
        admin,
        upstream,
        session,
        postgres,
        credentials,
        login,
        tokens,
        forward_auth,
        audit,
        sso,
        registration,
        password_policy,
        sqlite,
        mfa,
        mail,
        routes: Arc::new(routes),
        log,
    };
    e.into_result(config)
}

/// Whoever holds one of these secrets must not be able to sign with another:
/// a partner could mint our bearer tokens, the app (which holds the
/// assertion secret) our tokens or a partner's hand-offs.
fn secrets_differ(
    tokens: &TokensConfig,
    sso: &[SsoPartner],
    assertion_secret: Option<&[u8]>,
    e: &mut ConfigErrors,
) {
    if let Some(secret) = &tokens.secret {
        for (i, p) in sso.iter().enumerate() {
            if p.secret.as_ref() == Some(secret) {
                e.push(
                    &format!("sso.partners[{i}].secret"),
                    "must differ from tokens.secret (the partner could mint bearer tokens)",
                );
            }
        }
    }
    if let Some(assertion_secret) = assertion_secret {
        let reused = tokens.secret.as_deref() == Some(assertion_secret)
            || sso
                .iter()
                .any(|p| p.secret.as_deref() == Some(assertion_secret));
        if reused {
            e.push(
                "upstream.assertion.secret",
                "must differ from tokens.secret and every sso partner secret (the app could mint tokens)",
            );
        }
    }
}

/// Sign-up without address verification: someone could register a
/// victim's address and be handed the victim's SSO log-in later. With
/// `registration.verify_email` such an account stays inactive (and SSO
/// refuses inactive users) until the address owner follows the link.
fn sign_up_keeps_sso_safe(
    registration: Option<&RegistrationConfig>,
    sso: &[SsoPartner],
    e: &mut ConfigErrors,
) {
    let Some(registration) = registration else {
        return;
    };
    if registration.activate.is_some() {
        return;
    }
    for (i, p) in sso.iter().enumerate() {
        if p.require_known_user && p.user_claim == "email" {
            e.push(
                &format!("sso.partners[{i}].user_claim"),
                "\"email\" with require_known_user cannot be combined with registration.enabled unless registration.verify_email = true (addresses are not verified at sign-up)",
            );
        }
    }
}
