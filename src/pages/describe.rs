//! Words for people about a session: a browser name from its `User-Agent`
//! ("Firefox on Linux", "Safari on iPhone") and times ("5 minutes ago",
//! "2024-05-01 14:03 UTC"). A best guess from well-known tokens, shown on
//! the account page and never used for any decision, so no crate and no
//! table of every browser: an unknown agent is named by its first product
//! token, or "Unknown browser".

use std::time::{Duration, SystemTime};

/// Browser tokens, most specific first: Edge, Opera and Samsung Internet
/// also say "Chrome", and every Chrome says "Safari".
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("Edge/", "Edge"),
    ("OPR/", "Opera"),
    ("OPiOS/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("Trident/", "Internet Explorer"),
    ("MSIE ", "Internet Explorer"),
];

/// Systems, most specific first: iPhones say "like Mac OS X", Android says
/// "Linux".
const SYSTEMS: &[(&str, &str)] = &[
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("iPod", "iPod"),
    ("Android", "Android"),
    ("Windows Phone", "Windows Phone"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("FreeBSD", "FreeBSD"),
    ("OpenBSD", "OpenBSD"),
    ("Linux", "Linux"),
];

/// A readable name for the browser behind `user_agent`.
pub(crate) fn browser_name(user_agent: &str) -> String {
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(token, _)| user_agent.contains(token))
            .map(|(_, name)| *name)
    };
    let system = find(SYSTEMS);
    let browser = find(BROWSERS).map(str::to_string).or_else(|| {
        // Not a browser we know: a tool names itself first (`curl/8.5.0`).
        let product = user_agent.split(['/', ' ']).next().unwrap_or("");
        let plain = product
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        (plain && (2..=32).contains(&product.len()) && product != "Mozilla")
            .then(|| product.to_string())
    });
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser,
        (None, Some(system)) => format!("A browser on {system}"),
        (None, None) => "Unknown browser".to_string(),
    }
}

/// How long ago, in the largest whole unit: "just now", "1 minute ago",
/// "3 hours ago", "2 days ago".
pub(crate) fn ago(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let (n, unit) = match secs {
        0..=59 => return "just now".to_string(),
        60..=3_599 => (secs / 60, "minute"),
        3_600..=86_399 => (secs / 3_600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural} ago")
}

/// The time to the minute, in UTC: "2024-05-01 14:03 UTC".
pub(crate) fn utc_minute(at: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    // `2024-05-01T14:03:07Z`
    format!("{} {} UTC", &stamp[..10], &stamp[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named_with_their_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
                "Opera on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
                "Chrome on iPhone",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
                "Firefox on iPad",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
                "Headless Chrome on Linux",
            ),
        ];
        for (agent, expected) in cases {
            assert_eq!(browser_name(agent), expected, "{agent}");
        }
    }

    #[test]
    fn tools_are_named_by_their_product_and_the_rest_is_unknown() {
        assert_eq!(browser_name("curl/8.5.0"), "curl");
        assert_eq!(browser_name("python-requests/2.31.0"), "python-requests");
        assert_eq!(browser_name(""), "Unknown browser");
        assert_eq!(browser_name("Mozilla/5.0"), "Unknown browser");
        assert_eq!(browser_name("<script>alert(1)</script>"), "Unknown browser");
        assert_eq!(
            browser_name("Mozilla/5.0 (Linux; Android 9) SomeWebView"),
            "A browser on Android"
        );
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        let s = Duration::from_secs;
        assert_eq!(ago(s(0)), "just now");
        assert_eq!(ago(s(59)), "just now");
        assert_eq!(ago(s(60)), "1 minute ago");
        assert_eq!(ago(s(150)), "2 minutes ago");
        assert_eq!(ago(s(3_600)), "1 hour ago");
        assert_eq!(ago(s(86_399)), "23 hours ago");
        assert_eq!(ago(s(3 * 86_400)), "3 days ago");
    }

    #[test]
    fn times_are_shown_to_the_minute_in_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_572_187);
        assert_eq!(utc_minute(at), "2024-05-01 14:03 UTC");
    }
}
