//! portcullis: an authentication reverse proxy. It puts a login wall in
//! front of an unchanged HTTP app and forwards only authenticated,
//! authorized requests, with identity headers the app can trust.
//!
//! # Layout
//!
//! See `ARCHITECTURE.md` for the request's path and the dependency rules.
//!
//! - `server`: listeners (proxy, admin, https redirect) in one accept loop
//!   with one set of limits, TLS, idle and stall deadlines, shutdown.
//! - `proxy`: the request pipeline (normalize -> own endpoints -> strip ->
//!   authenticate -> authorize -> rewrite -> forward), header surgery, the
//!   upstream client and WebSocket tunnels, the signed assertion.
//! - `web`: portcullis' own endpoints under `login.prefix`, one file per
//!   area, and what request handling shares: the request-path error and its
//!   one status mapping, responses, cookies, the client's origin, bodies.
//! - `admin`: `/healthz`, `/readyz`, `/metrics`.
//! - `app`: the shared state built once from the config; reload.
//! - `auth`: sign-in logic with no HTTP types: passwords, sessions, bearer
//!   tokens, SSO, CSRF, lockout, the audit trail, a user's own account.
//! - `store`: session, credential, token, lockout, replay and audit traits;
//!   memory, file, PostgreSQL and MySQL backends; start-up work.
//! - `policy`: path normalization, route rules and the one authorization
//!   decision, `next` validation.
//! - `pages`: sign-in, sign-out, SSO switch, account, password reset and
//!   error page templates, and the words they use for browsers and times.
//! - `mail`: outgoing mail (reset and verification links) from a bounded
//!   queue with retries, and its templates.
//! - `config`: `proxy.toml` -> validated [`config::Config`] (two stages).
//! - `metrics`: the Prometheus registry.
//! - `ops`: operator commands (`check`, `migrate`, `sessions`, `routes`).

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub(crate) mod mail;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod store;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use app::App;
pub use config::Config;

/// Already-bound sockets for [`run`]; tests bind `127.0.0.1:0`.
pub struct Listeners {
    pub main: TcpListener,
    pub admin: Option<TcpListener>,
    /// Plain listener that redirects to https (`server.tls.redirect_http_from`).
    pub https_redirect: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address the config names.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let bind = |addr, key: &'static str| async move {
            listen(addr).map_err(|e| anyhow::anyhow!("{key}: cannot listen on {addr}: {e}"))
        };
        let main = bind(config.server.listen, "server.listen").await?;
        let admin = match config.admin.listen {
            Some(addr) => Some(bind(addr, "admin.listen").await?),
            None => None,
        };
        let https_redirect = match config
            .server
            .tls
            .as_ref()
            .and_then(|t| t.redirect_http_from)
        {
            Some(addr) => Some(bind(addr, "server.tls.redirect_http_from").await?),
            None => None,
        };
        Ok(Self {
            main,
            admin,
            https_redirect,
        })
    }
}

/// Clients the kernel keeps waiting for `accept` per listener (capped by
/// `net.core.somaxconn`). Too short a queue drops the SYNs of a burst of new
/// clients, which then retry after a second: 1,000 browsers arriving at once
/// must not wait that long.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs the proxy and its side listeners until `shutdown` resolves, then
/// drains in-flight requests (up to `server.shutdown_grace`) and returns.
///
/// Start-up work ([`App::wait_started`]) is finished before the first
/// connection is accepted.
pub async fn run(app: Arc<App>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    app.wait_started().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut side_tasks = Vec::new();
    if let Some(listener) = listeners.admin {
        side_tasks.push(tokio::spawn(admin::run(app.clone(), listener, stopped())));
    }
    if let Some(listener) = listeners.https_redirect {
        side_tasks.push(tokio::spawn(server::run_https_redirect(
            app.clone(),
            listener,
            stopped(),
        )));
    }
    let main = server::run(app, listeners.main, stopped());
    tokio::pin!(main);
    tokio::select! {
        () = &mut main => {}
        () = shutdown => {
            let _ = stop_tx.send(true);
            main.await;
        }
    }
    let _ = stop_tx.send(true);
    for task in side_tasks {
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of clients the proxy has not accepted yet all get connected:
    /// with the old queue of 128 the 129th SYN was dropped and retried.
    #[tokio::test]
    async fn a_burst_of_clients_waits_in_the_listen_queue() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| tokio::net::TcpStream::connect(addr));
        let connected = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::future::join_all(connects),
        )
        .await
        .expect("clients beyond the listen queue were left hanging");
        assert!(connected.iter().all(Result::is_ok));
    }
}
