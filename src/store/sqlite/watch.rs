//! How a revocation made by another process on the same file (`portcullis
//! sessions revoke` while `serve` runs) reaches the server: every
//! revocation bumps the one row of `revocations` in its own transaction,
//! and the server reads that row every [`POLL_EVERY`]. A value it did not
//! write itself makes the stores drop their cached sessions and reload the
//! revoked refresh families, so the revocation is in force within about
//! 250 ms. This stands in for PostgreSQL's LISTEN/NOTIFY; one small read
//! per poll is all it costs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

use super::Sqlite;

/// How often the server reads the `revocations` row.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);

/// What the stores of a serving process listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heard {
    /// Bumped whenever a revocation by someone else was seen, and when the
    /// poll works again after failing: drop every cached session, reload
    /// the revoked families.
    pub(crate) epoch: u64,
    /// False while the poll fails (revocations may go unheard).
    pub(crate) live: bool,
}

/// The `revocations.seq` value this process has accounted for, and the
/// news for its stores.
pub(crate) struct Revocations {
    known: AtomicI64,
    heard: watch::Sender<Heard>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            known: AtomicI64::new(-1),
            heard: watch::Sender::new(Heard {
                epoch: 0,
                live: false,
            }),
        }
    }
}

impl Revocations {
    pub(crate) fn subscribe(&self) -> watch::Receiver<Heard> {
        self.heard.subscribe()
    }

    /// This process committed a revocation that set the sequence to `seq`
    /// (and already applied it to its own stores): nothing to reload,
    /// unless someone else bumped it too meanwhile.
    pub(crate) fn own(&self, seq: i64) {
        let _ = self
            .known
            .compare_exchange(seq - 1, seq, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The poll read `seq`.
    fn observed(&self, seq: i64) {
        let before = self.known.swap(seq, Ordering::AcqRel);
        self.heard.send_if_modified(|heard| {
            if before == seq && heard.live {
                return false;
            }
            heard.epoch += 1;
            heard.live = true;
            true
        });
    }

    /// The poll failed.
    fn lost(&self) {
        self.heard.send_if_modified(|heard| {
            let was = heard.live;
            heard.live = false;
            was
        });
    }
}

/// Bumps the sequence; call inside the revoking transaction. Returns the
/// new value, for [`Revocations::own`] once committed.
pub(crate) fn bump(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "UPDATE revocations SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        [],
        |row| row.get(0),
    )
}

/// Reads the sequence every [`POLL_EVERY`] once the schema is in place;
/// stops when the store is dropped.
pub(crate) async fn poll(sqlite: Weak<Sqlite>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(s) = sqlite.upgrade() else { return };
        if !s.is_migrated() {
            continue;
        }
        let seq = s
            .read(|c| c.query_row("SELECT seq FROM revocations WHERE id = 1", [], |r| r.get(0)))
            .await;
        match seq {
            Ok(seq) => {
                if failing {
                    tracing::info!("SQLite revocation poll works again");
                    failing = false;
                }
                s.revocations.observed(seq);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "SQLite revocation poll failed; retrying (bearer requests answer 503 after session.cache_ttl)");
                    failing = true;
                }
                s.revocations.lost();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_revocations_are_not_news_but_others_are() {
        let r = Revocations::default();
        let rx = r.subscribe();
        r.observed(5);
        assert_eq!(
            *rx.borrow(),
            Heard {
                epoch: 1,
                live: true
            }
        );
        r.own(6);
        r.observed(6);
        assert_eq!(rx.borrow().epoch, 1, "our own bump");
        r.observed(7);
        assert_eq!(rx.borrow().epoch, 2, "someone else's");
        r.own(9);
        r.observed(9);
        assert_eq!(rx.borrow().epoch, 3, "8 was someone else's");
        r.lost();
        assert!(!rx.borrow().live);
        r.observed(9);
        assert_eq!(
            *rx.borrow(),
            Heard {
                epoch: 4,
                live: true
            },
            "back: reload"
        );
    }
}
