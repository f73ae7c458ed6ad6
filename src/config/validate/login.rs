//! `[login]`.

use std::path::PathBuf;
use std::time::Duration;

use super::values::nonzero;
use crate::config::raw;
use crate::config::{ConfigErrors, LoginConfig, Rate};

pub(super) fn login(raw: raw::RawLogin, e: &mut ConfigErrors) -> LoginConfig {
    let prefix = raw.prefix.trim_end_matches('/').to_string();
    let valid_prefix = prefix.starts_with('/')
        && prefix.len() > 1
        && crate::policy::path::normalize(&prefix).is_ok_and(|p| p == prefix);
    if !valid_prefix {
        e.push(
            "login.prefix",
            format!("{:?} must be a normalized path like \"/auth\"", raw.prefix),
        );
    }
    if raw.max_failures == 0 {
        e.push("login.max_failures", "must be at least 1");
    }
    let ip_rate = rate(&raw.ip_rate).unwrap_or_else(|| {
        e.push(
            "login.ip_rate",
            format!("{:?} is not a rate like \"20/min\"", raw.ip_rate),
        );
        Rate {
            count: 20,
            per: Duration::from_secs(60),
        }
    });
    let hash_workers = if raw.hash_workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        raw.hash_workers
    };
    LoginConfig {
        prefix,
        title: raw.title,
        template: (!raw.template.is_empty()).then(|| PathBuf::from(raw.template)),
        max_failures: raw.max_failures,
        lockout: nonzero(e, "login.lockout", raw.lockout),
        ip_rate,
        hash_workers,
        hash_wait: nonzero(e, "login.hash_wait", raw.hash_wait),
    }
}

/// `"20/min"`, `"5/s"`, `"100/hour"`, or `"10/30s"`.
fn rate(s: &str) -> Option<Rate> {
    let (count, per) = s.split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|&c| c > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other)
            .ok()
            .filter(|d| !d.is_zero())?,
    };
    Some(Rate { count, per })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_parse_in_common_shapes() {
        assert_eq!(super::rate("20/min").unwrap().count, 20);
        assert_eq!(super::rate("5/s").unwrap().per.as_secs(), 1);
        assert_eq!(super::rate("10/30s").unwrap().per.as_secs(), 30);
        assert!(super::rate("0/min").is_none());
        assert!(super::rate("fast").is_none());
    }
}
