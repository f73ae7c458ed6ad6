//! `{prefix}/jwks.json`: the public key of `[upstream.assertion]` as a JWK
//! set (RFC 7517), so the app verifies assertions with the key portcullis
//! publishes instead of a copied PEM. Each key carries the `kid` the
//! assertions name; after a key rotation (a reload) the set holds the new key
//! and assertions name the new `kid`, which tells a caching app to refetch.
//! HS256 has no public half: without a public key the answer is 404.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::app::App;
use crate::web::error::ProxyError;
use crate::web::response::{self, Body};

/// Long enough to spare the endpoint, short enough that a rotated key is
/// seen within minutes even by an app that does not refetch on a new `kid`.
const CACHE_CONTROL: &str = "public, max-age=300";

pub(crate) fn jwks(app: &App) -> Result<Response<Body>, ProxyError> {
    let assertion = app.assertion.load();
    let Some(public) = assertion.as_ref().and_then(|a| a.public.as_ref()) else {
        return Err(ProxyError::NotFound);
    };
    let set = serde_json::json!({ "keys": [public.jwk] });
    let mut response = response::json(StatusCode::OK, &set);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(response)
}
