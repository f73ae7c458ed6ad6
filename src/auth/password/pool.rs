//! The threads password hashes run on: `login.hash_workers` of them, at a
//! lower CPU priority (nice 10) than the threads that proxy requests, so a
//! storm of sign-ins uses the cores' spare time instead of adding to every
//! proxied request's latency. Linux applies a nice value per thread.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How much lower than the rest of the process hashing threads run.
const HASH_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Dropping it ends the threads once their current hash is done.
pub(crate) struct HashThreads {
    jobs: mpsc::Sender<Job>,
}

impl HashThreads {
    pub(crate) fn start(count: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{index}"))
                .spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `job` on a hashing thread; `None` if no thread is left.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    if let Err(e) = rustix::process::setpriority_process(None, HASH_NICENESS) {
        tracing::debug!(error = %e, "hashing thread keeps the process' priority");
    }
    loop {
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_run_below_the_priority_of_the_rest_of_the_process() {
        let ours = rustix::process::getpriority_process(None).unwrap();
        let threads = HashThreads::start(2);
        let theirs = threads
            .run(|| rustix::process::getpriority_process(None).unwrap())
            .await
            .unwrap();
        assert_eq!(theirs, (ours + HASH_NICENESS).min(19));
    }
}
