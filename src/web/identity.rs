//! The identity headers portcullis sets for the app (and, in forward-auth
//! mode, for the proxy in front): one place that writes them.

use http::{HeaderMap, HeaderValue};

use crate::auth::Caller;
use crate::config::IdentityHeaders;

/// Sets the identity headers for `caller`. A value that cannot be a
/// header (a control character in the users table) is left out rather than
/// sent mangled.
pub(crate) fn set_identity(headers: &mut HeaderMap, names: &IdentityHeaders, caller: &Caller) {
    let identity = &caller.identity;
    let roles = identity.roles.join(",");
    for (name, value) in [
        (&names.user, identity.id.as_str()),
        (&names.email, identity.email.as_str()),
        (&names.roles, roles.as_str()),
        (&names.session, caller.public_id.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name.clone(), v);
        }
    }
}
