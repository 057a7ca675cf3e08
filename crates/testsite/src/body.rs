//! Replies and response bodies: whole bodies, bodies produced by a blocking thread
//! (compression bombs, endless pages), and the slow ones (trickle, stall).
//!
//! A streamed body is fed through a small bounded channel. When the client hangs up,
//! hyper drops the receiving end, the producer's next send fails, and it stops: a
//! capped client therefore costs the server only what it actually read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{Notify, mpsc};

/// Chunks a streamed body may have in flight between producer and socket. Small, so
/// that a producer never runs far ahead of what the client reads.
const STREAM_CHANNEL_CAPACITY: usize = 4;

/// How much a [`ChanWriter`] gathers before it sends a chunk.
const CHUNK_SIZE: usize = 16 * 1024;

type Producer = Box<dyn FnOnce(mpsc::Sender<Bytes>) + Send + 'static>;

/// How a reply's body is made.
pub(crate) enum ReplyBody {
    /// The whole body, known up front.
    Full(Bytes),
    /// Produced on a blocking thread; the producer stops when a send fails.
    Stream(Producer),
    /// `n` bytes, one every `every`.
    Trickle { n: u32, every: Duration },
    /// Headers and then nothing, until the client gives up.
    Stall,
}

/// A response under construction.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: ReplyBody,
}

impl Reply {
    pub(crate) fn bytes(status: u16, content_type: &str, body: Bytes) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body: ReplyBody::Full(body),
        }
    }

    pub(crate) fn html(status: u16, body: String) -> Reply {
        Reply::bytes(status, "text/html; charset=utf-8", Bytes::from(body))
    }

    pub(crate) fn text(status: u16, body: &str) -> Reply {
        Reply::bytes(
            status,
            "text/plain; charset=utf-8",
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full(Bytes::new()),
        }
    }

    pub(crate) fn trickle(n: u32, every: Duration) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "text/html".to_string())],
            body: ReplyBody::Trickle { n, every },
        }
    }

    pub(crate) fn stall() -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "text/html".to_string())],
            body: ReplyBody::Stall,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A reply whose body `produce` writes on a blocking thread.
pub(crate) fn stream_reply(
    status: u16,
    content_type: &str,
    content_encoding: Option<String>,
    produce: impl FnOnce(mpsc::Sender<Bytes>) + Send + 'static,
) -> Reply {
    let mut headers = vec![("content-type", content_type.to_string())];
    if let Some(enc) = content_encoding {
        headers.push(("content-encoding", enc));
    }
    Reply {
        status,
        headers,
        body: ReplyBody::Stream(Box::new(produce)),
    }
}

/// What became of one streamed body, once the server was done with it: how much of
/// it the server took from its producer and handed to the connection, and whether it
/// reached its end. Bytes handed to the connection are not bytes the client read:
/// the kernel's socket buffers (megabytes on loopback) hold what the client has not
/// read yet. A body that did not reach its end was cut off because the client hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReport {
    /// Chunks handed to the connection.
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the body was sent to its end.
    pub complete: bool,
}

/// The reports of the streamed bodies that ended, by URL, and a wake-up for those
/// who wait for one.
#[derive(Debug, Default)]
pub(crate) struct StreamLog {
    pub(crate) reports: Mutex<HashMap<String, Vec<StreamReport>>>,
    pub(crate) ended: Notify,
}

impl StreamLog {
    pub(crate) fn reports(&self, url: &str) -> Vec<StreamReport> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.get(url).cloned().unwrap_or_default()
    }
}

/// Counts what a streamed body hands to the connection; files its [`StreamReport`]
/// when the connection drops the body, at its end or when the client hung up.
pub(crate) struct StreamTrack {
    log: Arc<StreamLog>,
    url: String,
    report: StreamReport,
}

impl StreamTrack {
    pub(crate) fn new(log: Arc<StreamLog>, url: String) -> StreamTrack {
        StreamTrack {
            log,
            url,
            report: StreamReport {
                chunks: 0,
                bytes: 0,
                complete: false,
            },
        }
    }
}

impl Drop for StreamTrack {
    fn drop(&mut self) {
        let mut reports = self.log.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports
            .entry(std::mem::take(&mut self.url))
            .or_default()
            .push(self.report);
        drop(reports);
        self.log.ended.notify_waiters();
    }
}

/// The response body type the server sends.
pub(crate) enum SiteBody {
    Full(Option<Bytes>),
    Chan(mpsc::Receiver<Bytes>, Option<StreamTrack>),
}

impl SiteBody {
    /// Starts whatever produces `body` and returns the hyper body that reads it. A
    /// streamed body is counted by `track`, when given.
    pub(crate) fn start(body: ReplyBody, track: Option<StreamTrack>) -> SiteBody {
        match body {
            ReplyBody::Full(b) => SiteBody::Full(Some(b)),
            ReplyBody::Stream(produce) => {
                let (tx, rx) = mpsc::channel(STREAM_CHANNEL_CAPACITY);
                tokio::task::spawn_blocking(move || produce(tx));
                SiteBody::Chan(rx, track)
            }
            ReplyBody::Trickle { n, every } => {
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(async move {
                    for _ in 0..n {
                        if tx.send(Bytes::from_static(b".")).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(every).await;
                    }
                });
                SiteBody::Chan(rx, None)
            }
            ReplyBody::Stall => {
                let (tx, rx) = mpsc::channel(1);
                // Hold the sender until the client hangs up, so the body never ends.
                tokio::spawn(async move { tx.closed().await });
                SiteBody::Chan(rx, None)
            }
        }
    }
}

impl Body for SiteBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SiteBody::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            SiteBody::Chan(rx, track) => {
                let next = rx.poll_recv(cx);
                if let (Poll::Ready(got), Some(t)) = (&next, track) {
                    match got {
                        Some(b) => {
                            t.report.chunks += 1;
                            t.report.bytes += b.len() as u64;
                        }
                        None => t.report.complete = true,
                    }
                }
                next.map(|o| o.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SiteBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SiteBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SiteBody::Full(None) => SizeHint::with_exact(0),
            SiteBody::Chan(..) => SizeHint::default(),
        }
    }
}

/// A `Write` that sends what it is given down a body channel in chunks. A send to a
/// client that hung up fails with `BrokenPipe`, which stops any encoder writing to it.
pub(crate) struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChanWriter {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> ChanWriter {
        ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_SIZE),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client hung up"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_SIZE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
