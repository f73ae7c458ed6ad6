//! `[[sso.partners]]`.

use std::time::Duration;

use super::values::{nonzero, show};
use crate::config::raw;
use crate::config::{ConfigErrors, SsoPartner};

/// The partners that validate; a partner with a problem is left out (and the
/// problem reported), so checks across sections see only complete ones.
pub(super) fn partners(raw: Vec<raw::RawPartner>, e: &mut ConfigErrors) -> Vec<SsoPartner> {
    let sso = raw
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| partner(i, p, e))
        .collect::<Vec<_>>();
    for (i, p) in sso.iter().enumerate() {
        if sso[..i]
            .iter()
            .any(|q| q.name == p.name || q.issuer == p.issuer)
        {
            e.push(
                &format!("sso.partners[{i}]"),
                "name and issuer must be unique among partners",
            );
        }
    }
    sso
}

fn partner(i: usize, raw: raw::RawPartner, e: &mut ConfigErrors) -> Option<SsoPartner> {
    use jsonwebtoken::{AlgorithmFamily, DecodingKey};
    let key_path = |field: &str| format!("sso.partners[{i}].{field}");
    let before = e.problems.len();
    for (field, value) in [
        ("name", &raw.name),
        ("issuer", &raw.issuer),
        ("audience", &raw.audience),
        ("user_claim", &raw.user_claim),
    ] {
        if value.trim().is_empty() {
            e.push(&key_path(field), "must not be empty");
        }
    }
    let algorithms = raw.algorithms;
    if algorithms.is_empty() {
        e.push(
            &key_path("algorithms"),
            "must list the algorithms this partner signs with, e.g. [\"RS256\"]",
        );
    }
    let families: Vec<AlgorithmFamily> = algorithms.iter().map(|a| a.family()).collect();
    if families.windows(2).any(|w| w[0] != w[1]) {
        e.push(
            &key_path("algorithms"),
            "must all be of one family (HS*, RS*/PS*, ES* or EdDSA): one key cannot serve two",
        );
    }
    let family = families.first().copied();
    let key = match (raw.key.is_empty(), raw.secret.is_empty(), family) {
        (true, false, Some(AlgorithmFamily::Hmac)) => {
            if raw.secret.len() < 32 {
                e.push(&key_path("secret"), "must be at least 32 bytes");
            }
            Some(DecodingKey::from_secret(raw.secret.as_bytes()))
        }
        (false, true, Some(family)) if family != AlgorithmFamily::Hmac => {
            match std::fs::read(&raw.key) {
                Ok(pem) => {
                    let parsed = match family {
                        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                        _ => DecodingKey::from_ed_pem(&pem),
                    };
                    match parsed {
                        Ok(key) => Some(key),
                        Err(err) => {
                            e.push(
                                &key_path("key"),
                                format!(
                                    "{}: not a PEM public key for {:?}: {err}",
                                    raw.key, algorithms[0]
                                ),
                            );
                            None
                        }
                    }
                }
                Err(err) => {
                    e.push(&key_path("key"), format!("cannot read {}: {err}", raw.key));
                    None
                }
            }
        }
        (_, _, None) => None,
        (true, true, _) => {
            e.push(
                &key_path("key"),
                "set `key` (PEM public key) for RS/PS/ES/EdDSA or `secret` for HS*",
            );
            None
        }
        (false, false, _) => {
            e.push(&key_path("key"), "set either `key` or `secret`, not both");
            None
        }
        (true, false, Some(_)) => {
            e.push(&key_path("secret"), "a shared secret only goes with HS* algorithms; use `key` for public-key algorithms");
            None
        }
        (false, true, Some(_)) => {
            e.push(
                &key_path("key"),
                "HS* algorithms use `secret`, not a public key (that would allow HS/RS confusion)",
            );
            None
        }
    };
    let max_age = nonzero(e, &key_path("max_age"), raw.max_age);
    let clock_skew = raw.clock_skew;
    if clock_skew > Duration::from_secs(300) || clock_skew > max_age {
        e.push(
            &key_path("clock_skew"),
            format!(
                "{:?} must be at most 5m and at most max_age",
                show(clock_skew)
            ),
        );
    }
    if raw.require_mfa && !raw.require_known_user {
        e.push(
            &key_path("require_mfa"),
            "needs require_known_user = true (a partner's own users have no second factor here)",
        );
    }
    if e.problems.len() > before {
        return None;
    }
    Some(SsoPartner {
        name: raw.name,
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms,
        key: key?,
        secret: (!raw.secret.is_empty()).then(|| raw.secret.into_bytes()),
        max_age,
        clock_skew,
        user_claim: raw.user_claim,
        require_known_user: raw.require_known_user,
        require_mfa: raw.require_mfa,
    })
}
