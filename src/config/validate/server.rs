//! `[server]`, `[server.tls]` and `[admin]`.

use std::path::PathBuf;

use ipnet::IpNet;

use super::values::{nonzero, socket_addr};
use crate::config::raw;
use crate::config::{AdminConfig, ConfigErrors, PublicUrl, ServerConfig, TlsConfig};

pub(super) fn server(raw: raw::RawServer, e: &mut ConfigErrors) -> ServerConfig {
    let listen =
        socket_addr(e, "server.listen", &raw.listen).unwrap_or(([0, 0, 0, 0], 8080).into());
    let public_url = if raw.public_url.is_empty() {
        None
    } else {
        public_url(&raw.public_url, e)
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => Some(net),
                Err(_) => {
                    e.push(
                        &format!("server.trusted_proxies[{i}]"),
                        format!("{s:?} is not an IP address or CIDR like \"10.0.0.0/8\""),
                    );
                    None
                }
            }
        })
        .collect();
    let max_header_bytes = raw.max_header_bytes;
    if !(8192..=1 << 20).contains(&max_header_bytes) {
        e.push(
            "server.max_header_bytes",
            format!("must be between 8192 and 1048576, not {max_header_bytes}"),
        );
    }
    if raw.max_connections == 0 {
        e.push("server.max_connections", "must be at least 1");
    }
    let tls = raw.tls.and_then(|t| tls(t, e));
    if !(1..=10_000).contains(&raw.h2_max_streams) {
        e.push(
            "server.h2_max_streams",
            format!("must be between 1 and 10000, not {}", raw.h2_max_streams),
        );
    }
    let websocket_origins = raw
        .websocket_origins
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let origin = origin_of(s);
            if origin.is_none() {
                e.push(
                    &format!("server.websocket_origins[{i}]"),
                    format!("{s:?} is not an origin like \"https://app.example.com\""),
                );
            }
            origin
        })
        .collect();
    ServerConfig {
        listen,
        public_url,
        trusted_proxies,
        header_read_timeout: nonzero(e, "server.header_read_timeout", raw.header_read_timeout),
        max_header_bytes: max_header_bytes.clamp(8192, 1 << 20) as usize,
        max_connections: raw.max_connections.clamp(1, u32::MAX as u64) as usize,
        shutdown_grace: raw.shutdown_grace,
        body_read_timeout: nonzero(e, "server.body_read_timeout", raw.body_read_timeout),
        keepalive_timeout: nonzero(e, "server.keepalive_timeout", raw.keepalive_timeout),
        h2_max_streams: raw.h2_max_streams.clamp(1, 10_000),
        websocket_origins,
        tls,
    }
}

fn public_url(s: &str, e: &mut ConfigErrors) -> Option<PublicUrl> {
    let key = "server.public_url";
    let Ok(uri) = s.parse::<http::Uri>() else {
        e.push(
            key,
            format!("{s:?} is not a URL like \"https://app.example.com\""),
        );
        return None;
    };
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            e.push(
                key,
                format!("{s:?} must start with https:// (or http:// for local development)"),
            );
            return None;
        }
    };
    let Some(authority) = uri.authority() else {
        e.push(key, format!("{s:?} has no host"));
        return None;
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        e.push(key, format!("{s:?} must be an origin without a path"));
    }
    let scheme = if https { "https" } else { "http" };
    Some(PublicUrl {
        https,
        origin: format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()),
    })
}

/// `scheme://host[:port]` in lower case, as browsers send it in `Origin`,
/// for an http(s) URL without a path; `None` for anything else.
fn origin_of(s: &str) -> Option<String> {
    let uri = s.parse::<http::Uri>().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

fn tls(raw: raw::RawTls, e: &mut ConfigErrors) -> Option<TlsConfig> {
    let redirect_http_from = if raw.redirect_http_from.is_empty() {
        None
    } else {
        socket_addr(e, "server.tls.redirect_http_from", &raw.redirect_http_from)
    };
    let cert = PathBuf::from(&raw.cert);
    let key = PathBuf::from(&raw.key);
    match crate::config::tls::server_config(&cert, &key) {
        Ok((server_config, fingerprint)) => Some(TlsConfig {
            cert,
            key,
            server_config,
            redirect_http_from,
            fingerprint,
        }),
        Err(err) => {
            e.push("server.tls", err);
            None
        }
    }
}

pub(super) fn admin(raw: raw::RawAdmin, e: &mut ConfigErrors) -> AdminConfig {
    AdminConfig {
        listen: if raw.listen.is_empty() {
            None
        } else {
            socket_addr(e, "admin.listen", &raw.listen)
        },
    }
}
