//! For tests and benchmarks: [`RedisServer`], a real `redis-server` of its own in a
//! temporary directory, on a Unix socket only (no TCP port), with the AOF on.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::RedisOptions;

/// How long [`RedisServer::start`] and [`RedisServer::restart`] wait for the server to
/// answer PING (loading a large AOF after a restart included).
const READY_WITHIN: Duration = Duration::from_secs(30);
/// The interval between two PINGs while waiting.
const POLL: Duration = Duration::from_millis(5);

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Where redis-server 7 keeps its AOF, in its `--dir`.
const AOF_DIR: &str = "appendonlydir";

/// A copy of a [`RedisServer`]'s data, from [`RedisServer::save_point`].
#[derive(Debug)]
pub struct SavePoint {
    dir: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

/// A `redis-server` process started for a test, killed (and its directory removed)
/// when dropped.
///
/// It runs `redis-server --port 0 --unixsocket <dir>/redis.sock --dir <dir>
/// --appendonly yes --save "" --daemonize no` plus the arguments given to
/// [`RedisServer::start_with`], so its data is in the AOF of its directory and
/// [`RedisServer::restart`] replays it.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with the default settings (`appendfsync everysec`).
    ///
    /// # Errors
    /// When `redis-server` cannot be started or does not answer within 30 s.
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra arguments, such as `["--appendfsync", "always"]`.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_with(args: &[&str]) -> io::Result<RedisServer> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "trawl-redis-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut s = RedisServer {
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        s.spawn()?;
        Ok(s)
    }

    /// The server's directory (its AOF and its log, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of its Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Its URL, `redis+unix://<dir>/redis.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Options for worker `worker` of crawl `crawl` on this server.
    pub fn options(&self, crawl: &str, worker: &str) -> RedisOptions {
        RedisOptions::new(self.url(), crawl, worker)
    }

    /// A client for direct commands (`CONFIG SET`, `INFO`, `FLUSHALL`).
    ///
    /// # Errors
    /// When the URL does not parse (it always does).
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.url())
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it to exit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again in the same directory (killing it first if it runs), so
    /// that it replays its AOF, and waits until it answers PING.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Takes a copy of the server's data (its AOF) as of now: kills the server, copies
    /// its `appendonlydir` aside, and starts it again. [`RedisServer::rewind`] puts the
    /// copy back, as a server restarted after losing its latest writes would be (an
    /// AOF written with `appendfsync everysec` and a machine that went down).
    ///
    /// # Errors
    /// When the copy cannot be made, or the server does not start again.
    pub fn save_point(&mut self) -> io::Result<SavePoint> {
        self.kill9();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let to = self.dir.join(format!("save-point-{n}"));
        copy_dir(&self.dir.join(AOF_DIR), &to)?;
        self.spawn()?;
        Ok(SavePoint { dir: to })
    }

    /// Restarts the server on the data of a [`SavePoint`], losing every write since.
    ///
    /// # Errors
    /// When the data cannot be put back, or the server does not start again.
    pub fn rewind(&mut self, to: &SavePoint) -> io::Result<()> {
        self.kill9();
        let aof = self.dir.join(AOF_DIR);
        std::fs::remove_dir_all(&aof)?;
        copy_dir(&to.dir, &aof)?;
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let sock = self.socket();
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("redis-server")
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&sock)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--appendonly")
            .arg("yes")
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        let client = redis::Client::open(self.url()).map_err(io::Error::other)?;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(io::Error::other(format!(
                    "redis-server exited ({status}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            let last = match client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "redis-server did not answer PING within {READY_WITHIN:?}: {last}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
