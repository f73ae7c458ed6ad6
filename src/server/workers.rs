//! The proxy listener's workers: one thread per core the process may run
//! on, each with a single-threaded runtime accepting on the same socket and
//! owning its own pool of upstream connections. A request is read,
//! authorized, forwarded and answered on one thread (the way nginx workers
//! work), with no cross-thread wake-up between the client's connection, the
//! upstream pool and the app's connection. What is shared (sessions, keys,
//! stores, the connection caps) stays in the one [`App`].

use std::future::Future;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};

use super::{serve_listener, Limits, Listener};
use crate::app::App;
use crate::proxy;
use crate::proxy::forward::UpstreamSlots;
use crate::web::forwarded::Connection;

/// Serves the proxy on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `server.shutdown_grace` for open requests.
///
/// The caller's runtime keeps what runs beside the requests (listeners for
/// revocations, sweeps, the audit and mail queues); the workers run on
/// threads of their own.
pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let socket = match listener.into_std() {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!(error = %e, "server.listen: cannot hand the socket to the workers");
            return;
        }
    };
    let shared = Shared {
        slots: Arc::new(Semaphore::new(app.config.server.max_connections)),
        upstream_slots: UpstreamSlots::new(app.config.upstream.max_connections),
    };
    let signals = Signals::new();
    let mut finished = Vec::new();
    for index in 0..worker_count() {
        let worker = Worker {
            app: app.clone(),
            socket: match socket.try_clone() {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::error!(error = %e, "server.listen: cannot share the socket with a worker");
                    break;
                }
            },
            shared: Shared {
                slots: shared.slots.clone(),
                upstream_slots: shared.upstream_slots.for_worker(index),
            },
            stop: signals.stop.subscribe(),
            released: signals.released.subscribe(),
        };
        let (done, finishing) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("portcullis-worker-{index}"))
            .spawn(move || worker.run(done));
        match spawned {
            Ok(_) => finished.push(finishing),
            Err(e) => tracing::error!(worker = index, error = %e, "cannot start a worker thread"),
        }
    }
    drop(socket);
    if finished.is_empty() {
        tracing::error!("no worker thread could start; the proxy listener is closed");
        return;
    }
    tracing::debug!(workers = finished.len(), "proxy workers started");
    shutdown.await;
    let _ = signals.stop.send(true);
    for finishing in finished {
        let _ = finishing.await;
    }
    // `signals` drops here and releases the workers' runtimes.
}

/// One worker per core this process may use (`taskset`, cgroup CPU limits
/// and container quotas are honoured).
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the workers share with each other.
#[derive(Clone)]
struct Shared {
    /// `server.max_connections`, for the whole listener.
    slots: Arc<Semaphore>,
    /// `upstream.max_connections`, for every worker's pool together.
    upstream_slots: UpstreamSlots,
}

/// Stop accepting, and then (once every worker has finished) let the
/// runtimes go. Dropping it (the caller's future dropped) does both.
struct Signals {
    stop: watch::Sender<bool>,
    released: watch::Sender<bool>,
}

impl Signals {
    fn new() -> Self {
        Self {
            stop: watch::Sender::new(false),
            released: watch::Sender::new(false),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.released.send(true);
    }
}

struct Worker {
    app: Arc<App>,
    socket: std::net::TcpListener,
    shared: Shared,
    stop: watch::Receiver<bool>,
    released: watch::Receiver<bool>,
}

impl Worker {
    /// The thread's body: serve until stopped, report, then keep the
    /// runtime turning until every worker is done, because database
    /// connections opened on this thread serve the other workers too.
    fn run(self, done: oneshot::Sender<()>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a worker's runtime");
                return;
            }
        };
        let Self {
            app,
            socket,
            shared,
            stop,
            released,
        } = self;
        runtime.block_on(async move {
            match TcpListener::from_std(socket) {
                Ok(socket) => serve(app, socket, shared, until_set(stop)).await,
                Err(e) => tracing::error!(error = %e, "a worker cannot use the proxy socket"),
            }
            let _ = done.send(());
            until_set(released).await;
        });
    }
}

/// One worker's accept loop, with its own pipeline and upstream pool.
async fn serve(
    app: Arc<App>,
    socket: TcpListener,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits::of(&app.config.server);
    let pipeline = Arc::new(proxy::Pipeline::new(&app.config, shared.upstream_slots));
    let reclaiming = tokio::spawn({
        let pipeline = pipeline.clone();
        async move { pipeline.upstream.give_back_idle().await }
    });
    let listener = Listener {
        name: "proxy",
        socket,
        tls: app.tls.as_ref(),
        open_gauge: Some(app.metrics.connections_open.clone()),
        slots: shared.slots,
    };
    let handler = {
        let app = app.clone();
        move |req: Request<Incoming>, conn: Connection| {
            let app = app.clone();
            let pipeline = pipeline.clone();
            async move { proxy::handle(&app, &pipeline, req, conn).await }
        }
    };
    serve_listener(listener, limits, handler, shutdown).await;
    reclaiming.abort();
}

/// Resolves once `flag` is set or its sender is gone.
async fn until_set(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}
