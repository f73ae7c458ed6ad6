//! TOTP secrets at rest. With `mfa.secret_key` a secret is stored as
//! `1 || nonce || AES-256-GCM(secret) || tag`, bound to its user id, so a
//! copy of the table (a backup, a read-only leak) gives no codes, and a
//! row moved to another user does not open. Without the key it is stored
//! as `0 || secret`. The version byte keeps secrets stored before the key
//! was set readable (they are sealed at the user's next enrolment); a
//! sealed secret cannot be read without the key that sealed it, so removing
//! or changing the key means those users enrol again (`mfa reset`).

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};

const PLAIN: u8 = 0;
const SEALED: u8 = 1;

/// Why a stored secret could not be read; the message names the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("mfa.secret_key is not set, but this user's TOTP secret was sealed with one")]
    NoKey,
    #[error(
        "mfa.secret_key does not open this user's TOTP secret (was the key changed? `portcullis mfa reset` lets them enrol again)"
    )]
    WrongKey,
    #[error("a stored TOTP secret is malformed")]
    Malformed,
}

fn aad(user_id: &str) -> Vec<u8> {
    [b"portcullis-mfa-secret\0", user_id.as_bytes()].concat()
}

/// The stored form of `secret`.
pub(super) fn seal(key: Option<&[u8; 32]>, user_id: &str, secret: &[u8]) -> Vec<u8> {
    let Some(key) = key else {
        return [&[PLAIN][..], secret].concat();
    };
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key");
    let mut data = secret.to_vec();
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad(user_id).as_slice()), &mut data)
        .expect("AES-GCM seals a 20-byte secret");
    [&[SEALED][..], nonce.as_ref(), &data].concat()
}

/// The secret of a stored value.
pub(super) fn open(
    key: Option<&[u8; 32]>,
    user_id: &str,
    stored: &[u8],
) -> Result<Vec<u8>, OpenError> {
    match stored.split_first() {
        Some((&PLAIN, secret)) if !secret.is_empty() => Ok(secret.to_vec()),
        Some((&SEALED, rest)) if rest.len() > NONCE_LEN => {
            let key = key.ok_or(OpenError::NoKey)?;
            let key =
                RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| OpenError::Malformed)?;
            let (nonce, data) = rest.split_at(NONCE_LEN);
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
            let mut data = data.to_vec();
            key.open_in_place(nonce, Aad::from(aad(user_id).as_slice()), &mut data)
                .map(|plain| plain.to_vec())
                .map_err(|_| OpenError::WrongKey)
        }
        _ => Err(OpenError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_user() {
        let key = [9u8; 32];
        let stored = seal(Some(&key), "1", SECRET);
        assert_eq!(stored[0], SEALED);
        assert!(!stored.windows(SECRET.len()).any(|w| w == SECRET));
        assert_eq!(open(Some(&key), "1", &stored).unwrap(), SECRET);
        assert!(matches!(
            open(Some(&[8; 32]), "1", &stored),
            Err(OpenError::WrongKey)
        ));
        assert!(matches!(
            open(Some(&key), "2", &stored),
            Err(OpenError::WrongKey)
        ));
        assert!(matches!(open(None, "1", &stored), Err(OpenError::NoKey)));
        assert_ne!(
            stored,
            seal(Some(&key), "1", SECRET),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn secrets_stored_before_the_key_was_set_stay_readable() {
        let stored = seal(None, "1", SECRET);
        assert_eq!(open(None, "1", &stored).unwrap(), SECRET);
        assert_eq!(open(Some(&[9; 32]), "1", &stored).unwrap(), SECRET);
        assert!(matches!(open(None, "1", &[]), Err(OpenError::Malformed)));
        assert!(matches!(
            open(None, "1", &[7, 1, 2]),
            Err(OpenError::Malformed)
        ));
    }
}
