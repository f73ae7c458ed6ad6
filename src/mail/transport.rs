//! The SMTP transport `mail.smtp` names: `smtp://` with STARTTLS whenever
//! the server offers it, `smtps://` with TLS from the first byte, the
//! credentials of the URL (percent-decoded), rustls with the system's
//! trusted roots.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use percent_encoding::percent_decode_str;

/// Longest wait for any step of an SMTP conversation (connect, a reply).
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the transport without connecting. `hello`: the name announced in
/// EHLO (the host of `server.public_url`). The error names `mail.smtp` and
/// never repeats a password.
pub(crate) fn build(smtp: &str, hello: Option<&str>) -> Result<Transport, String> {
    let url = url::Url::parse(smtp)
        .map_err(|e| format!("mail.smtp: not a URL like smtp://host:25: {e}"))?;
    let host = url
        .host_str()
        .ok_or("mail.smtp: the URL names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tls = |host: &str| {
        TlsParameters::new(host.to_string()).map_err(|e| format!("mail.smtp: TLS setup: {e}"))
    };
    let (port, tls) = match url.scheme() {
        "smtp" => (url.port().unwrap_or(25), Tls::Opportunistic(tls(&host)?)),
        "smtps" => (url.port().unwrap_or(465), Tls::Wrapper(tls(&host)?)),
        other => {
            return Err(format!(
                "mail.smtp: scheme {other:?} is neither smtp nor smtps"
            ))
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let Some(hello) = hello {
        builder = builder.hello_name(client_id(hello));
    }
    if !url.username().is_empty() {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        builder = builder.credentials(Credentials::new(
            decode(url.username()),
            decode(url.password().unwrap_or("")),
        ));
    }
    Ok(builder.build())
}

/// EHLO wants a domain or an address literal.
fn client_id(host: &str) -> ClientId {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => ClientId::Ipv4(v4),
        Ok(std::net::IpAddr::V6(v6)) => ClientId::Ipv6(v6),
        Err(_) => ClientId::Domain(bare.to_string()),
    }
}

/// Connects, greets and sends NOOP (for `check`); the error says what
/// failed, starting with `mail.smtp`.
pub(crate) async fn try_connect(smtp: &str, hello: Option<&str>) -> Result<(), String> {
    let transport = build(smtp, hello)?;
    let target = where_to(smtp);
    match tokio::time::timeout(SMTP_TIMEOUT * 2, transport.test_connection()).await {
        Err(_) => Err(format!("mail.smtp: {target} did not answer in time")),
        Ok(Err(e)) => Err(format!(
            "mail.smtp: cannot reach the SMTP server {target}: {e}"
        )),
        Ok(Ok(false)) => Err(format!("mail.smtp: {target} did not answer NOOP")),
        Ok(Ok(true)) => Ok(()),
    }
}

/// `scheme://host:port` of the URL, without credentials, for messages.
pub(crate) fn where_to(smtp: &str) -> String {
    match url::Url::parse(smtp) {
        Ok(url) => format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_and_smtps_urls_build_with_decoded_credentials() {
        assert!(build("smtp://127.0.0.1:2525", Some("app.example.com")).is_ok());
        assert!(build("smtps://user%40example.com:p%3Ass@mail.example.com", None).is_ok());
        assert!(build("smtp://[::1]:25", Some("[::1]")).is_ok());
        let err = build("http://mail.example.com", None).unwrap_err();
        assert!(err.starts_with("mail.smtp"), "{err}");
    }

    #[test]
    fn the_target_named_in_errors_carries_no_password() {
        let shown = where_to("smtps://user:secret@mail.example.com:465");
        assert_eq!(shown, "smtps://mail.example.com:465");
        assert!(!shown.contains("secret"));
    }
}
