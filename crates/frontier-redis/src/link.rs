//! One connection to the server that reconnects: a call that meets a connection error
//! (or a server still loading its data after a restart) is sent again on a new
//! connection, with backoff, until [`RedisOptions::reconnect_for`] has passed.
//!
//! Sending a call again is only right because every call is idempotent: reads and
//! plain writes trivially, the scripts through this worker's ack sequence number and
//! op id (see `scripts`).
//!
//! [`RedisOptions::reconnect_for`]: crate::RedisOptions::reconnect_for

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, RedisError, RedisResult, ServerErrorKind};
use trawl_frontier::{Error, Result};

/// The first pause before a reconnection, doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) struct Link {
    client: redis::Client,
    conn: Option<Connection>,
    timeout: Duration,
    reconnect_for: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        detail: e.to_string(),
    }
}

/// Whether a call that failed with `e` may succeed on a new connection.
fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading) | ErrorKind::Server(ServerErrorKind::TryAgain)
        )
        || e.code() == Some("BUSY")
}

impl Link {
    pub(crate) fn new(url: &str, timeout: Duration, reconnect_for: Duration) -> Result<Link> {
        let client = redis::Client::open(url).map_err(|e| backend(format!("bad server url {url:?}: {e}")))?;
        Ok(Link {
            client,
            conn: None,
            timeout,
            reconnect_for,
        })
    }

    fn connect(&mut self) -> RedisResult<&mut Connection> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(self.timeout)?;
            c.set_read_timeout(Some(self.timeout))?;
            c.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(c);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(RedisError::from((ErrorKind::Client, "no connection"))),
        }
    }

    /// Runs `f` on the connection, reconnecting and running it again after transient
    /// errors (see the module docs) unless `stop` is set.
    pub(crate) fn run<T>(
        &mut self,
        stop: &AtomicBool,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut pause = BACKOFF_MIN;
        loop {
            let r = self.connect().and_then(&mut f);
            match r {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) => {
                    self.conn = None;
                    let left = self.reconnect_for.saturating_sub(start.elapsed());
                    if left.is_zero() || stop.load(Ordering::Relaxed) {
                        return Err(backend(format!(
                            "{e} (gave up after {:.1} s)",
                            start.elapsed().as_secs_f64()
                        )));
                    }
                    tracing::debug!(error = %e, "redis call failed; reconnecting");
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(BACKOFF_MAX);
                }
                Err(e) => return Err(backend(e)),
            }
        }
    }
}
