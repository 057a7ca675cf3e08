//! A static file server for a directory, on loopback: real sites (the Rust
//! documentation, the HTML that Debian packages ship) served for benchmarks, the way a
//! plain web server serves them (`index.html` for a directory, a content type by
//! extension, 404 otherwise).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{ReplyBody, SiteBody};
use crate::server::percent_decode;

/// A directory being served; drop it to stop.
#[derive(Debug)]
pub struct ServedDir {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ServedDir {
    /// `http://127.0.0.1:PORT/`.
    pub fn root_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for ServedDir {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("xhtml") => "application/xhtml+xml",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("pdf") => "application/pdf",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `path` names, if it stays under `root`.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path.split(['?', '#']).next().unwrap_or("/"));
    let mut file = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => file.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

async fn answer(root: &Path, path: &str, head: bool) -> Response<SiteBody> {
    let (status, ctype, body) = match resolve(root, path) {
        Some(file) => match tokio::fs::read(&file).await {
            Ok(bytes) => (StatusCode::OK, content_type(&file), Bytes::from(bytes)),
            Err(_) => (
                StatusCode::FORBIDDEN,
                "text/plain",
                Bytes::from_static(b"forbidden\n"),
            ),
        },
        None => (
            StatusCode::NOT_FOUND,
            "text/html",
            Bytes::from_static(b"<html><body>not found</body></html>\n"),
        ),
    };
    let len = body.len();
    let mut resp = Response::new(SiteBody::start(
        ReplyBody::Full(if head { Bytes::new() } else { body }),
        None,
    ));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    resp
}

/// Serves `dir` on 127.0.0.1:`port` (0: a free port) over HTTP/1.1.
///
/// # Errors
/// When `dir` is not a directory or the port cannot be bound.
pub async fn serve_dir(dir: impl Into<PathBuf>, port: u16) -> std::io::Result<ServedDir> {
    let root: Arc<PathBuf> = Arc::new(dir.into());
    if !root.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", root.display()),
        ));
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let requests = Arc::new(AtomicU64::new(0));
    let count = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (root, count) = (root.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (root, count) = (root.clone(), count.clone());
                    async move {
                        count.fetch_add(1, Ordering::Relaxed);
                        let head = req.method() == http::Method::HEAD;
                        Ok::<_, std::convert::Infallible>(answer(&root, req.uri().path(), head).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(ServedDir { addr, requests, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let dir = std::env::temp_dir().join(format!("trawl-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/index.html"), "x").expect("write");
        std::fs::write(dir.join("a b.css"), "x").expect("write");
        assert_eq!(resolve(&dir, "/sub/"), Some(dir.join("sub/index.html")));
        assert_eq!(resolve(&dir, "/a%20b.css?v=1"), Some(dir.join("a b.css")));
        assert_eq!(resolve(&dir, "/../etc/passwd"), None);
        assert_eq!(resolve(&dir, "/missing.html"), None);
        assert_eq!(content_type(Path::new("x.HTML")), "text/html; charset=utf-8");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
