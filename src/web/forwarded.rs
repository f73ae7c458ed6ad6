//! Who the client is and how it reached us: the client address (believing
//! `X-Forwarded-For` only from `trusted_proxies`), the scheme and host, and
//! the request id. Computed once per request from the raw headers, before
//! any client copy of these headers is stripped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use http::header::HOST;
use http::{HeaderMap, Uri};
use ipnet::IpNet;

/// The facts about a request's origin that portcullis forwards and logs.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub client_ip: IpAddr,
    /// The peer is in `server.trusted_proxies`.
    pub from_trusted_proxy: bool,
    pub proto: &'static str,
    pub host: Option<String>,
    pub request_id: String,
}

/// How a connection reached us.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The connection's place under `server.max_connections`; a WebSocket
    /// tunnel keeps holding it after hyper lets go of the connection.
    pub slot: Option<Arc<OwnedSemaphorePermit>>,
}

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Origin {
    /// Our own origin as a browser names it: `server.public_url`'s, else
    /// the scheme and host this request arrived with.
    pub(crate) fn own_origin(
        &self,
        public_url: Option<&crate::config::PublicUrl>,
    ) -> Option<String> {
        match public_url {
            Some(url) => Some(url.origin.clone()),
            None => self
                .host
                .as_ref()
                .map(|host| format!("{}://{}", self.proto, host.to_ascii_lowercase())),
        }
    }

    /// True when the request's `Origin` header names our own origin.
    pub(crate) fn is_same_origin(
        &self,
        headers: &http::HeaderMap,
        public_url: Option<&crate::config::PublicUrl>,
    ) -> bool {
        let Some(sent) = headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        self.own_origin(public_url)
            .is_some_and(|ours| sent.eq_ignore_ascii_case(&ours))
    }

    pub(crate) fn from_request(
        peer: SocketAddr,
        tls: bool,
        uri: &Uri,
        headers: &HeaderMap,
        trusted: &[IpNet],
    ) -> Self {
        let peer_ip = canonical(peer.ip());
        let from_proxy = is_trusted(peer_ip, trusted);
        let client_ip = if from_proxy {
            client_from_xff(peer_ip, headers, trusted)
        } else {
            peer_ip
        };
        let own_proto = if tls { "https" } else { "http" };
        let proto = if from_proxy {
            last_value(headers, "x-forwarded-proto")
                .and_then(|p| match p.to_ascii_lowercase().as_str() {
                    "https" => Some("https"),
                    "http" => Some("http"),
                    _ => None,
                })
                .unwrap_or(own_proto)
        } else {
            own_proto
        };
        let own_host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string()));
        let forwarded_host = from_proxy
            .then(|| last_value(headers, "x-forwarded-host"))
            .flatten();
        let host = forwarded_host
            .into_iter()
            .chain(own_host)
            .find(|h| is_valid_host(h));
        let request_id = from_proxy
            .then(|| last_value(headers, "x-request-id"))
            .flatten()
            .filter(|id| is_valid_request_id(id))
            .unwrap_or_else(new_request_id);
        Origin {
            client_ip,
            from_trusted_proxy: from_proxy,
            proto,
            host,
            request_id,
        }
    }
}

/// The right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy; a malformed entry stops the walk (everything left of it is
/// client-controlled).
fn client_from_xff(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_xff_entry(entry) else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:80`.
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then(|| last.to_string())
}

fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// 128 random bits as 32 hex digits.
pub(crate) fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 0x0f)] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn origin(peer: &str, pairs: &[(&str, &str)], trusted: &[&str]) -> Origin {
        let trusted: Vec<IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        Origin::from_request(
            peer.parse().unwrap(),
            false,
            &Uri::from_static("/"),
            &headers(pairs),
            &trusted,
        )
    }

    #[test]
    fn untrusted_peer_cannot_claim_an_address_scheme_host_or_id() {
        let o = origin(
            "203.0.113.9:5000",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("x-request-id", "chosen"),
                ("host", "app.example.com"),
            ],
            &["10.0.0.0/8"],
        );
        assert_eq!(o.client_ip.to_string(), "203.0.113.9");
        assert_eq!(o.proto, "http");
        assert_eq!(o.host.as_deref(), Some("app.example.com"));
        assert_ne!(o.request_id, "chosen");
        assert_eq!(o.request_id.len(), 32);
    }

    #[test]
    fn trusted_proxy_chain_yields_the_rightmost_untrusted_entry() {
        let o = origin(
            "10.0.0.2:5000",
            &[
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
                ("x-forwarded-for", "10.0.0.5"),
            ],
            &["10.0.0.0/8"],
        );
        assert_eq!(o.client_ip.to_string(), "198.51.100.7");
    }

    #[test]
    fn trusted_proxy_scheme_host_and_id_are_believed() {
        let o = origin(
            "10.0.0.2:5000",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("x-request-id", "abc-123"),
            ],
            &["10.0.0.0/8"],
        );
        assert_eq!(o.proto, "https");
        assert_eq!(o.host.as_deref(), Some("app.example.com"));
        assert_eq!(o.request_id, "abc-123");
    }

    #[test]
    fn malformed_xff_entry_stops_the_walk() {
        let o = origin(
            "10.0.0.2:1",
            &[("x-forwarded-for", "1.1.1.1, garbage, 10.0.0.9")],
            &["10.0.0.0/8"],
        );
        assert_eq!(o.client_ip.to_string(), "10.0.0.9");
    }

    #[test]
    fn malformed_request_id_from_a_proxy_is_replaced() {
        let o = origin("10.0.0.2:1", &[("x-request-id", "a b")], &["10.0.0.0/8"]);
        assert_eq!(o.request_id.len(), 32);
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_cidr() {
        let o = origin(
            "[::ffff:10.0.0.2]:1",
            &[("x-forwarded-for", "8.8.8.8")],
            &["10.0.0.0/8"],
        );
        assert_eq!(o.client_ip.to_string(), "8.8.8.8");
    }
}
