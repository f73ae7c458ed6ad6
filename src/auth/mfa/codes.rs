//! The codes themselves: TOTP (RFC 6238 with SHA-1, 30 s steps, 6 digits,
//! as every authenticator app reads an `otpauth://` URI without extra
//! parameters) through `totp-rs`, and one-time recovery codes.
//!
//! A TOTP code is compared with the codes of the current step and one step
//! either side, every one of them in constant time, and the step it matched
//! is returned so the caller can accept each step once. Recovery codes are
//! 8 characters of Crockford's base32 (40 random bits), shown as
//! `xxxx-xxxx`, and stored only as a MAC: HMAC-SHA256 under `mfa.secret_key`
//! when set (so a stolen table alone cannot be searched for them), plain
//! SHA-256 otherwise; both bind the user id. 40 bits are plenty against
//! online guessing, which the lockout stops after `login.max_failures`.

use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per TOTP step.
pub(crate) const STEP_SECS: u64 = 30;
/// 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Recovery codes handed out at enrolment.
pub(crate) const RECOVERY_CODES: usize = 10;
/// Crockford's base32: no I, L, O or U, so nothing reads as something else.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A fresh TOTP secret from the OS CSPRNG.
pub(super) fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    secret
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    // Unchecked: the secret is ours (160 bits) and the issuer was checked
    // by the config; `get_url` percent-encodes a username with ':'.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(issuer.to_string()),
        account.to_string(),
    )
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER`.
pub(super) fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    totp(secret, issuer, account).get_url()
}

/// The secret as typed into an app by hand (base32, no padding).
pub(super) fn base32(secret: &[u8]) -> String {
    totp(secret, "-", "-").get_secret_base32()
}

/// The TOTP step of a Unix time.
pub(super) fn step_of(unix_secs: u64) -> i64 {
    (unix_secs / STEP_SECS) as i64
}

/// The step among `now - 1`, `now` and `now + 1` whose code `code` is (the
/// latest if several are), comparing with all three in constant time.
pub(super) fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<i64> {
    let totp = totp(secret, "-", "-");
    let now = step_of(unix_secs);
    let mut matched = None;
    for step in [now - 1, now, now + 1] {
        let expected = totp.generate(step.max(0) as u64 * STEP_SECS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    matched
}

/// What a user typed, read as a TOTP code (six digits) or a recovery code
/// (eight base32 characters, any case, with or without the dash; O read
/// as 0 and I, L as 1); `None` for anything else.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Typed {
    Totp(String),
    Recovery(String),
}

pub(super) fn read_code(typed: &str) -> Option<Typed> {
    let kept: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if kept.len() == 6 && kept.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Typed::Totp(kept));
    }
    let normal: String = kept
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    (normal.len() == 8 && normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then_some(Typed::Recovery(normal))
}

/// Ten fresh recovery codes, `xxxx-xxxx`.
pub(super) fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..8)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..32)] as char)
                .collect();
            format!("{}-{}", &chars[..4], &chars[4..])
        })
        .collect()
}

/// The stored form of a recovery code (normalized as [`read_code`] does):
/// HMAC-SHA256 under `key` when there is one, SHA-256 otherwise.
pub(super) fn recovery_hash(key: Option<&[u8; 32]>, user_id: &str, code: &str) -> [u8; 32] {
    let normal = match read_code(code) {
        Some(Typed::Recovery(normal)) => normal,
        _ => code.to_string(),
    };
    let data = [
        b"portcullis-recovery\0",
        user_id.as_bytes(),
        b"\0",
        normal.as_bytes(),
    ];
    match key {
        Some(key) => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
            data.iter().for_each(|d| mac.update(d));
            mac.finalize().into_bytes().into()
        }
        None => {
            let mut hash = Sha256::new();
            data.iter().for_each(|d| hash.update(d));
            hash.finalize().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column, last six digits.
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(
                matching_step(secret, code, time),
                Some(step_of(time)),
                "{time}"
            );
        }
    }

    #[test]
    fn one_step_of_skew_either_side_and_no_more() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let code_at = |t: u64| totp(&secret, "-", "-").generate(t);
        let step = step_of(now);
        assert_eq!(
            matching_step(&secret, &code_at(now - 30), now),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(&secret, &code_at(now + 30), now),
            Some(step + 1)
        );
        assert_eq!(matching_step(&secret, &code_at(now - 60), now), None);
        assert_eq!(matching_step(&secret, &code_at(now + 60), now), None);
        assert_eq!(matching_step(&secret, "", now), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let secret = b"12345678901234567890";
        assert_eq!(
            otpauth_uri(secret, "Growbal", "ana"),
            "otpauth://totp/Growbal:ana?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Growbal"
        );
        assert!(otpauth_uri(secret, "A b", "x:y@z").starts_with("otpauth://totp/A%20b:x%3Ay%40z?"));
    }

    #[test]
    fn typed_codes_are_read_leniently_and_nothing_else() {
        assert_eq!(read_code(" 123 456 "), Some(Typed::Totp("123456".into())));
        assert_eq!(
            read_code("AB1O-xyzL"),
            Some(Typed::Recovery("ab10xyz1".into()))
        );
        assert_eq!(read_code("12345"), None);
        assert_eq!(read_code("abcd-efgu"), None, "u is not in the alphabet");
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hash_by_key_and_user() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert!(codes
            .iter()
            .all(|c| c.len() == 9 && c.as_bytes()[4] == b'-'));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        let code = &codes[0];
        let plain = recovery_hash(None, "1", code);
        assert_eq!(
            plain,
            recovery_hash(None, "1", &code.to_uppercase().replace('-', ""))
        );
        assert_ne!(plain, recovery_hash(None, "2", code));
        assert_ne!(plain, recovery_hash(Some(&[1; 32]), "1", code));
    }
}
