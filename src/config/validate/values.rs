//! Checks shared by every section: addresses, header names, durations.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;

use crate::config::ConfigErrors;

/// `d`, unless it is zero where only a positive duration makes sense.
pub(super) fn nonzero(e: &mut ConfigErrors, key: &str, d: Duration) -> Duration {
    if d.is_zero() {
        e.push(key, format!("{:?} must be longer than zero", show(d)));
        return Duration::from_secs(1);
    }
    d
}

/// A duration as an operator writes it (`"1h 30m"`), for messages.
pub(super) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

pub(super) fn socket_addr(e: &mut ConfigErrors, key: &str, s: &str) -> Option<SocketAddr> {
    match s.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            e.push(
                key,
                format!("{s:?} is not an address like \"0.0.0.0:8080\""),
            );
            None
        }
    }
}

pub(super) fn header_name(e: &mut ConfigErrors, key: &str, s: &str) -> HeaderName {
    match HeaderName::from_bytes(s.as_bytes()) {
        Ok(name) => name,
        Err(_) => {
            e.push(key, format!("{s:?} is not a valid header name"));
            HeaderName::from_static("x-invalid")
        }
    }
}
