//! CSRF tokens: HMAC-SHA256 under a per-process key, so nothing is stored and
//! a token is never "spent". The login token is bound to a random nonce kept
//! in a cookie that every tab shares, so the form works in several tabs at
//! once; the logout token is bound to the session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use crate::store::TokenHash;

type HmacSha256 = Hmac<Sha256>;

pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(key)
    }

    /// A fresh nonce for the login CSRF cookie.
    pub fn new_nonce() -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn login_token(&self, nonce: &str) -> String {
        self.sign(b"login", nonce.as_bytes())
    }

    pub fn check_login(&self, nonce: &str, token: &str) -> bool {
        self.verify(b"login", nonce.as_bytes(), token)
    }

    pub fn logout_token(&self, session: &TokenHash) -> String {
        self.sign(b"logout", &session.0)
    }

    pub fn check_logout(&self, session: &TokenHash, token: &str) -> bool {
        self.verify(b"logout", &session.0, token)
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.update(b"\0");
        mac.update(data);
        mac
    }

    fn sign(&self, purpose: &[u8], data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, data).finalize().into_bytes())
    }

    fn verify(&self, purpose: &[u8], data: &[u8], token: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        // Constant-time comparison.
        self.mac(purpose, data).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_token_checks_against_its_nonce_only() {
        let csrf = Csrf::random();
        let nonce = Csrf::new_nonce();
        let token = csrf.login_token(&nonce);
        assert!(csrf.check_login(&nonce, &token));
        assert!(
            csrf.check_login(&nonce, &token),
            "a token is not spent by use"
        );
        assert!(!csrf.check_login(&Csrf::new_nonce(), &token));
        assert!(!csrf.check_login(&nonce, "forged"));
        assert!(!csrf.check_login(&nonce, ""));
    }

    #[test]
    fn tokens_do_not_cross_purposes_or_keys() {
        let csrf = Csrf::random();
        let session = TokenHash([7; 32]);
        let logout = csrf.logout_token(&session);
        assert!(csrf.check_logout(&session, &logout));
        assert!(!csrf.check_logout(&TokenHash([8; 32]), &logout));
        assert!(!Csrf::random().check_logout(&session, &logout));
    }
}
