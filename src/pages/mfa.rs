//! The second-factor pages: the code form of a sign-in's second step, the
//! enrolment page with its QR code (inline SVG, nothing fetched), the
//! status page with the form that turns a factor off, and the recovery
//! codes shown once.

use minijinja::context;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::Serialize;

use super::Pages;

/// The second step's code form.
#[derive(Debug, Serialize)]
pub struct MfaCodeView<'a> {
    pub action: &'a str,
    pub csrf_token: &'a str,
    pub username: &'a str,
    /// Where "start over" leads: the sign-in page.
    pub login_url: &'a str,
    pub error: Option<&'a str>,
}

/// The enrolment page.
#[derive(Debug, Serialize)]
pub struct MfaSetupView<'a> {
    pub action: &'a str,
    pub csrf_token: &'a str,
    pub next: &'a str,
    /// The `otpauth://` URI, shown as text and as the QR code.
    pub uri: &'a str,
    /// The secret in base32, to type by hand.
    pub secret: &'a str,
    /// A role requires a second factor (the page says why it is asked).
    pub required: bool,
    pub error: Option<&'a str>,
}

/// The page of a factor that is on.
#[derive(Debug, Serialize)]
pub struct MfaStatusView<'a> {
    /// The form that turns it off.
    pub action: &'a str,
    pub csrf_token: &'a str,
    pub next: &'a str,
    pub recovery_left: u32,
    /// A role requires it: no form to turn it off.
    pub required: bool,
    pub error: Option<&'a str>,
}

impl Pages {
    pub fn mfa_code(&self, view: &MfaCodeView<'_>) -> String {
        self.render(
            "mfa.html",
            context! { title => "Two-step verification", ..minijinja::Value::from_serialize(view) },
        )
    }

    pub fn mfa_setup(&self, view: &MfaSetupView<'_>) -> String {
        let qr_svg = qr_svg(view.uri);
        let uri_html = uri_html(view.uri);
        self.render(
            "mfa_setup.html",
            context! { title => "Set up two-step verification", qr_svg, uri_html, ..minijinja::Value::from_serialize(view) },
        )
    }

    pub fn mfa_status(&self, view: &MfaStatusView<'_>) -> String {
        self.render(
            "mfa_status.html",
            context! { title => "Two-step verification", ..minijinja::Value::from_serialize(view) },
        )
    }

    /// The recovery codes, shown once, and a link on to `next`.
    pub fn mfa_recovery(&self, codes: &[String], next: &str) -> String {
        self.render(
            "mfa_recovery.html",
            context! { title => "Recovery codes", codes, next },
        )
    }
}

/// The `otpauth://` URI as page text, character for character: it is made
/// of URL characters only (issuer and account are percent-encoded), and
/// the one `&` is followed by `issuer=`, which HTML reads as text, so
/// someone copying it (or a script reading the page) gets the exact URI.
/// Anything else is escaped as usual.
fn uri_html(uri: &str) -> String {
    let url_only = uri
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"%:/?=&._~-".contains(&b));
    if url_only {
        return uri.to_string();
    }
    uri.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `text` as a QR code in an `<svg>` element (no XML declaration, so it
/// can sit inside HTML). Medium error correction: a phone camera reads it
/// off any screen. Empty if the text is too long for a QR code, which an
/// `otpauth://` URI never is.
pub(crate) fn qr_svg(text: &str) -> String {
    let Ok(code) = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    }
}
