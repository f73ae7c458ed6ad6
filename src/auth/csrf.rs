//! CSRF tokens: HMAC-SHA256 under a per-process key, so nothing is stored and
//! a token is never "spent". The login token is bound to a random nonce kept
//! in a cookie that every tab shares, so the form works in several tabs at
//! once; the logout and account-page tokens are bound to the session.
//!
//! With PostgreSQL the key is shared by every instance and arrives once the
//! database answers; until then CSRF operations report the store unavailable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

use super::AuthError;
use crate::store::TokenHash;

type HmacSha256 = Hmac<Sha256>;

pub(crate) struct Csrf {
    key: std::sync::OnceLock<[u8; 32]>,
}

impl Csrf {
    #[cfg(test)]
    pub(crate) fn new(key: [u8; 32]) -> Self {
        let csrf = Self::pending();
        csrf.set_key(key);
        csrf
    }

    #[cfg(test)]
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(key)
    }

    /// A CSRF guard whose key is set later with [`Csrf::set_key`].
    pub(crate) fn pending() -> Self {
        Self {
            key: std::sync::OnceLock::new(),
        }
    }

    /// Sets the key; a second call is ignored.
    pub(crate) fn set_key(&self, key: [u8; 32]) {
        let _ = self.key.set(key);
    }

    fn key(&self) -> Result<&[u8; 32], AuthError> {
        self.key
            .get()
            .ok_or(AuthError::KeyNotLoaded("shared CSRF key"))
    }

    /// A fresh nonce for the login CSRF cookie.
    pub(crate) fn new_nonce() -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn login_token(&self, nonce: &str) -> Result<String, AuthError> {
        self.sign(b"login", nonce.as_bytes())
    }

    pub(crate) fn check_login(&self, nonce: &str, token: &str) -> Result<bool, AuthError> {
        self.verify(b"login", nonce.as_bytes(), token)
    }

    pub(crate) fn logout_token(&self, session: &TokenHash) -> Result<String, AuthError> {
        self.sign(b"logout", &session.0)
    }

    pub(crate) fn check_logout(&self, session: &TokenHash, token: &str) -> Result<bool, AuthError> {
        self.verify(b"logout", &session.0, token)
    }

    /// The token of the account page's forms (end a session, change the
    /// password), bound to the session that was shown the page.
    pub(crate) fn account_token(&self, session: &TokenHash) -> Result<String, AuthError> {
        self.sign(b"account", &session.0)
    }

    pub(crate) fn check_account(
        &self,
        session: &TokenHash,
        token: &str,
    ) -> Result<bool, AuthError> {
        self.verify(b"account", &session.0, token)
    }

    /// Binds a pending SSO switch (`payload`) to the session it was
    /// offered to, so only that browser, from our page, can confirm it.
    pub(crate) fn switch_token(
        &self,
        session: &TokenHash,
        payload: &str,
    ) -> Result<String, AuthError> {
        self.sign(
            b"sso-switch",
            &[&session.0[..], payload.as_bytes()].concat(),
        )
    }

    pub(crate) fn check_switch(
        &self,
        session: &TokenHash,
        payload: &str,
        token: &str,
    ) -> Result<bool, AuthError> {
        self.verify(
            b"sso-switch",
            &[&session.0[..], payload.as_bytes()].concat(),
            token,
        )
    }

    /// Binds the form behind a mailed link to that link's token: no
    /// cookie needed, and only a page that knows the token can post it.
    pub(crate) fn link_form_token(&self, link_token: &str) -> Result<String, AuthError> {
        self.sign(b"link-form", link_token.as_bytes())
    }

    pub(crate) fn check_link_form(&self, link_token: &str, token: &str) -> Result<bool, AuthError> {
        self.verify(b"link-form", link_token.as_bytes(), token)
    }

    /// A token for `data` under `purpose` (a second-factor form bound to its
    /// pending sign-in or session, the pending sign-in cookie itself).
    pub(crate) fn bound_token(&self, purpose: &[u8], data: &[u8]) -> Result<String, AuthError> {
        self.sign(purpose, data)
    }

    pub(crate) fn check_bound(
        &self,
        purpose: &[u8],
        data: &[u8],
        token: &str,
    ) -> Result<bool, AuthError> {
        self.verify(purpose, data, token)
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> Result<HmacSha256, AuthError> {
        let mut mac = HmacSha256::new_from_slice(self.key()?).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.update(b"\0");
        mac.update(data);
        Ok(mac)
    }

    fn sign(&self, purpose: &[u8], data: &[u8]) -> Result<String, AuthError> {
        Ok(URL_SAFE_NO_PAD.encode(self.mac(purpose, data)?.finalize().into_bytes()))
    }

    fn verify(&self, purpose: &[u8], data: &[u8], token: &str) -> Result<bool, AuthError> {
        let mac = self.mac(purpose, data)?;
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return Ok(false);
        };
        // Constant-time comparison.
        Ok(mac.verify_slice(&tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_token_checks_against_its_nonce_only() {
        let csrf = Csrf::random();
        let nonce = Csrf::new_nonce();
        let token = csrf.login_token(&nonce).unwrap();
        let check = |nonce: &str, token: &str| csrf.check_login(nonce, token).unwrap();
        assert!(check(&nonce, &token));
        assert!(check(&nonce, &token), "a token is not spent by use");
        assert!(!check(&Csrf::new_nonce(), &token));
        assert!(!check(&nonce, "forged"));
        assert!(!check(&nonce, ""));
    }

    #[test]
    fn tokens_do_not_cross_purposes_or_keys() {
        let csrf = Csrf::random();
        let session = TokenHash([7; 32]);
        let logout = csrf.logout_token(&session).unwrap();
        assert!(csrf.check_logout(&session, &logout).unwrap());
        assert!(!csrf.check_logout(&TokenHash([8; 32]), &logout).unwrap());
        assert!(!Csrf::random().check_logout(&session, &logout).unwrap());
        let account = csrf.account_token(&session).unwrap();
        assert!(csrf.check_account(&session, &account).unwrap());
        assert!(!csrf.check_account(&session, &logout).unwrap());
        assert!(!csrf.check_logout(&session, &account).unwrap());
    }

    #[test]
    fn pending_key_reports_unavailable_until_set() {
        let csrf = Csrf::pending();
        assert!(csrf.login_token("n").is_err());
        csrf.set_key([1; 32]);
        assert!(csrf.login_token("n").is_ok());
    }
}
