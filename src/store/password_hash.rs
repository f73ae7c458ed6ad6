//! The password hash formats a credential backend may hold: bcrypt (`$2a$`,
//! `$2b$`, `$2y$`) and argon2id. Only recognising them lives here, so the
//! users file can refuse a plaintext password at load without `store`
//! depending on `auth`; checking a password against a hash is
//! `auth::password`'s.

/// True for the hash formats `auth::password` can verify.
pub(crate) fn is_supported_hash(hash: &str) -> bool {
    bcrypt_cost(hash).is_some() || hash.starts_with("$argon2id$")
}

/// The cost of a `$2?$NN$...` bcrypt hash; `None` for anything else.
pub(crate) fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash
        .strip_prefix("$2a$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2y$"))?;
    rest.get(..2)?.parse().ok()
}
