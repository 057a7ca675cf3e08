//! `--metrics ADDR`: the crawl's live metrics over HTTP for Prometheus to scrape.
//!
//! The text is `prometheus-client`'s (the engine's `Metrics::encode`); this file only
//! answers HTTP. A scrape is one small GET, so it is served here as HTTP/1.1 with
//! `Connection: close` over a bare listener rather than by an HTTP server crate that
//! the crawler would otherwise not build: every request gets the metrics, whatever
//! its path, and a request head larger than [`MAX_HEAD`] is cut off.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trawl_engine::Metrics;

use crate::failure::{R, usage};

/// The most bytes of a request head read before answering.
const MAX_HEAD: usize = 8 << 10;

/// The OpenMetrics text format, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (`host:port`), so that a bad address or a port in use is a usage
/// error before the crawl starts.
pub(crate) async fn bind(addr: &str) -> R<TcpListener> {
    let parsed: SocketAddr = addr.parse().map_err(|_| {
        usage(format!(
            "--metrics {addr:?}: expected an address like 127.0.0.1:9898"
        ))
    })?;
    TcpListener::bind(parsed)
        .await
        .map_err(|e| usage(format!("--metrics {addr}: cannot listen: {e}")))
}

/// Serves `metrics` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // Read the request head (up to MAX_HEAD); its content does not matter.
            let mut head = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = metrics.encode();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
