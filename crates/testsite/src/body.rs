//! Replies and response bodies: whole bodies, bodies produced by a blocking thread
//! (compression bombs, endless pages), and the slow ones (trickle, stall).
//!
//! A streamed body is fed through a small bounded channel. When the client hangs up,
//! hyper drops the receiving end, the producer's next send fails, and it stops: a
//! capped client therefore costs the server only what it actually read.

use std::convert::Infallible;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

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

/// The response body type the server sends.
pub(crate) enum SiteBody {
    Full(Option<Bytes>),
    Chan(mpsc::Receiver<Bytes>),
}

impl SiteBody {
    /// Starts whatever produces `body` and returns the hyper body that reads it.
    pub(crate) fn start(body: ReplyBody) -> SiteBody {
        match body {
            ReplyBody::Full(b) => SiteBody::Full(Some(b)),
            ReplyBody::Stream(produce) => {
                let (tx, rx) = mpsc::channel(STREAM_CHANNEL_CAPACITY);
                tokio::task::spawn_blocking(move || produce(tx));
                SiteBody::Chan(rx)
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
                SiteBody::Chan(rx)
            }
            ReplyBody::Stall => {
                let (tx, rx) = mpsc::channel(1);
                // Hold the sender until the client hangs up, so the body never ends.
                tokio::spawn(async move { tx.closed().await });
                SiteBody::Chan(rx)
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
            SiteBody::Chan(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SiteBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SiteBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SiteBody::Full(None) => SizeHint::with_exact(0),
            SiteBody::Chan(_) => SizeHint::default(),
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
