//! Prometheus metrics served on the admin listener at `/metrics`: requests
//! by outcome and their latency, upstream failures, sign-in outcomes,
//! security events and open connections.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    /// `2xx`, `3xx`, `4xx`, `5xx`.
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    duration: Histogram,
    security_events: Family<EventLabels, Counter>,
    pub connections_open: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status class",
            requests.clone(),
        );
        // 0.5 ms .. ~16 s
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.0005, 2.0, 16,
        ));
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers",
            duration.clone(),
        );
        let security_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "security_events",
            "Security events (login_ok, login_failed, lockout, logout, refresh_reuse, ...)",
            security_events.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            security_events,
            connections_open,
        }
    }

    pub fn record_request(&self, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&StatusLabels { class }).inc();
        self.duration.observe(seconds);
    }

    pub fn record_event(&self, event: &'static str) {
        self.security_events
            .get_or_create(&EventLabels { event })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::new();
        m.record_request(200, 0.001);
        m.record_request(502, 0.002);
        m.record_event("login_failed");
        m.connections_open.inc();
        let text = m.render();
        assert!(
            text.contains("portcullis_requests_total{class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_requests_total{class=\"5xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_security_events_total{event=\"login_failed\"} 1"),
            "{text}"
        );
        assert!(text.contains("portcullis_connections_open 1"), "{text}");
        assert!(
            text.contains("portcullis_request_duration_seconds_count 2"),
            "{text}"
        );
    }
}
