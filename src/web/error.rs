//! The request-path error type and its one mapping to a status and a
//! client-facing message. Internal detail (the `Display` text) is logged with
//! the request id, never sent to the client.

use std::time::Duration;

use http::StatusCode;
use thiserror::Error;

use crate::policy::path::PathError;
use crate::store::StoreError;
use crate::web::response::BoxError;

#[derive(Debug, Error)]
pub(crate) enum ProxyError {
    #[error("refused path: {0}")]
    BadPath(#[from] PathError),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("forbidden by route rule or role")]
    Forbidden,
    /// As `Forbidden`, for a signed-in browser: the page links to the
    /// account page.
    #[error("forbidden for the signed-in user")]
    ForbiddenSignedIn,
    #[error("SSO hand-off refused: {0}")]
    SsoRefused(String),
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body over the limit")]
    PayloadTooLarge,
    #[error("request body stalled: no bytes for {0:?} (server.body_read_timeout)")]
    BodyTimeout(Duration),
    #[error("no upstream connection free within {0:?} (upstream.max_connections)")]
    UpstreamBusy(Duration),
    #[error("no password hashing slot free within {0:?} (login.hash_wait)")]
    HashBusy(Duration),
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(BoxError),
    #[error("upstream sent no response headers within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("could not sign the upstream assertion: {0}")]
    AssertionUnsigned(jsonwebtoken::errors::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key shared through the database is not loaded yet: start-up work
    /// is still running, so a 503 like a store outage.
    #[error("{0} not loaded yet (start-up work still running)")]
    KeyNotLoaded(&'static str),
    /// A concurrent rotation of the same refresh token did not finish in
    /// time; retrying gets its result.
    #[error("a concurrent refresh of this token has not finished")]
    RefreshInProgress,
    /// A fault of ours, not of the request nor of a backend that may come
    /// back: a 500, the text only logged.
    #[error("internal fault: {0}")]
    Internal(String),
}

impl From<&ProxyError> for StatusCode {
    fn from(e: &ProxyError) -> StatusCode {
        match e {
            ProxyError::BadPath(_) | ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden | ProxyError::ForbiddenSignedIn => StatusCode::FORBIDDEN,
            ProxyError::SsoRefused(_) => StatusCode::UNAUTHORIZED,
            ProxyError::NotFound => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamBusy(_) | ProxyError::HashBusy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Store(_)
            | ProxyError::KeyNotLoaded(_)
            | ProxyError::RefreshInProgress
            | ProxyError::AssertionUnsigned(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ProxyError {
    /// Seconds a client should wait before retrying (`Retry-After`), for
    /// the errors that are about load rather than the request.
    pub(crate) fn retry_after(&self) -> Option<&'static str> {
        match self {
            ProxyError::Store(_)
            | ProxyError::KeyNotLoaded(_)
            | ProxyError::RefreshInProgress
            | ProxyError::AssertionUnsigned(_) => Some("5"),
            ProxyError::UpstreamBusy(_) | ProxyError::HashBusy(_) => Some("1"),
            _ => None,
        }
    }

    /// `(json error code, page heading, one sentence for the user)`.
    pub(crate) fn public_text(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            ProxyError::BadPath(_) | ProxyError::BadRequest(_) => (
                "bad_request",
                "Bad request",
                "The request could not be understood.",
            ),
            ProxyError::Forbidden | ProxyError::ForbiddenSignedIn => (
                "forbidden",
                "Access denied",
                "You do not have permission to open this page.",
            ),
            ProxyError::SsoRefused(_) => (
                "invalid_token",
                "Sign-in link not accepted",
                "This sign-in link is invalid, expired or already used. Please sign in again.",
            ),
            ProxyError::NotFound => (
                "not_found",
                "Not found",
                "There is nothing at this address.",
            ),
            ProxyError::MethodNotAllowed => (
                "method_not_allowed",
                "Method not allowed",
                "This address does not accept that kind of request.",
            ),
            ProxyError::PayloadTooLarge => (
                "payload_too_large",
                "Request too large",
                "The request was larger than this page accepts.",
            ),
            ProxyError::BodyTimeout(_) => (
                "request_timeout",
                "Request timed out",
                "The request arrived too slowly. Please try again.",
            ),
            ProxyError::UpstreamBusy(_) => (
                "service_unavailable",
                "Service busy",
                "The application is busy right now. Please try again in a moment.",
            ),
            ProxyError::HashBusy(_) => (
                "service_unavailable",
                "Temporarily unavailable",
                "Sign-in is busy right now. Please try again in a moment.",
            ),
            ProxyError::UpstreamUnreachable(_) => (
                "bad_gateway",
                "Service unavailable",
                "The application is not responding right now. Please try again in a moment.",
            ),
            ProxyError::UpstreamTimeout(_) => (
                "gateway_timeout",
                "Service timed out",
                "The application took too long to respond. Please try again in a moment.",
            ),
            ProxyError::AssertionUnsigned(_) => (
                "service_unavailable",
                "Temporarily unavailable",
                "The application is not available right now. Please try again in a moment.",
            ),
            ProxyError::Store(_) | ProxyError::KeyNotLoaded(_) | ProxyError::RefreshInProgress => (
                "service_unavailable",
                "Temporarily unavailable",
                "Sign-in is temporarily unavailable. Please try again in a moment.",
            ),
            ProxyError::Internal(_) => (
                "internal_error",
                "Something went wrong",
                "The request could not be completed. Please try again later.",
            ),
        }
    }
}

impl From<crate::auth::password::HashBusy> for ProxyError {
    fn from(busy: crate::auth::password::HashBusy) -> Self {
        ProxyError::HashBusy(busy.0)
    }
}

impl From<crate::auth::AuthError> for ProxyError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Store(e) => e.into(),
            crate::auth::AuthError::HashBusy(busy) => busy.into(),
            crate::auth::AuthError::KeyNotLoaded(key) => ProxyError::KeyNotLoaded(key),
            crate::auth::AuthError::RefreshInProgress => ProxyError::RefreshInProgress,
            // HMAC signing of our own claims does not fail on input a
            // client controls: a fault of ours, a 500.
            e @ crate::auth::AuthError::Signing(_) => ProxyError::Internal(e.to_string()),
            e @ crate::auth::AuthError::MfaSecret(_) => ProxyError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_faults_are_500s_that_say_nothing_of_the_cause() {
        let e = ProxyError::Internal("could not hash the password".into());
        assert_eq!(StatusCode::from(&e), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.retry_after(), None);
        let (code, heading, message) = e.public_text();
        assert_eq!(code, "internal_error");
        for text in [heading, message] {
            assert!(!text.contains("hash"), "{text}");
        }
    }

    #[test]
    fn a_key_not_loaded_yet_is_a_503_with_retry_after_like_a_store_outage() {
        let outage = ProxyError::Store(StoreError::Unavailable {
            backend: "postgres",
            message: "down".into(),
        });
        let e = ProxyError::from(crate::auth::AuthError::KeyNotLoaded("shared CSRF key"));
        assert_eq!(StatusCode::from(&e), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after(), outage.retry_after());
        assert_eq!(e.public_text(), outage.public_text());
    }

    #[test]
    fn a_token_that_cannot_be_signed_is_a_500() {
        let cause = jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into();
        let e = ProxyError::from(crate::auth::AuthError::Signing(cause));
        assert_eq!(StatusCode::from(&e), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.retry_after(), None);
    }
}
