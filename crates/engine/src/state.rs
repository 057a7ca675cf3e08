//! Opening a state directory, once per command: [`StateDir`] for a crawl (writable,
//! recovers what a crash left), [`StateReader`] for reports (read-only: it never
//! requeues, quarantines or writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use trawl_fetcher::{RobotsStore, StoredRobots};
use trawl_frontier::{Counts, Frontier, FrontierStore, HostInfo, Options, RobotsEntry, UrlRecord};
use trawl_sink::{
    BROKEN_CHECKPOINT, BROKEN_FILE, BrokenLink, BrokenSink, CDXJ_CHECKPOINT, Checkpoint, CsvSink, Durability,
    HISTORY_FILE, HistorySink, JsonlSink, Sink, WarcOptions, WarcSink, cdxj_path,
};

use crate::config::{CrawlConfig, OutputConfig};
use crate::crawl::{PROGRESS_FILE, Progress};
use crate::error::Error;

/// The name under which the engine's own counters are stored with every ack.
const ENGINE_CHECKPOINT: &str = "engine";

/// The counters that limits need across runs, stored with every ack (so they are
/// exact across crashes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Persisted {
    pub(crate) pages: u64,
    pub(crate) bytes: u64,
    pub(crate) elapsed_ms: u64,
    #[serde(default)]
    pub(crate) budgets: HashMap<String, u64>,
}

impl Persisted {
    /// The checkpoint entry that carries these counters in an ack.
    pub(crate) fn checkpoint(&self) -> (String, Vec<u8>) {
        (
            ENGINE_CHECKPOINT.to_string(),
            serde_json::to_vec(self).unwrap_or_default(),
        )
    }
}

/// A crawl's state directory, opened for crawling. Opening it returns the leases a
/// crashed run left to their queues; it is done once per command, and the same handle
/// gives the stored configuration and then runs the crawl
/// ([`Crawler::open_in`](crate::Crawler::open_in)).
#[derive(Debug)]
pub struct StateDir {
    pub(crate) dir: PathBuf,
    /// The frontier the crawl runs on: the embedded sled store in `dir`, or a shared
    /// one ([`StateDir::open_shared`]).
    pub(crate) frontier: Arc<dyn FrontierStore>,
    /// The embedded store, when it is the one (a recrawl and the reports need it).
    pub(crate) sled: Option<Arc<Frontier>>,
    /// Whether the directory did not exist before this open (then a crawl that cannot
    /// start removes it again, leaving nothing behind).
    pub(crate) made: bool,
    pub(crate) cache_capacity: u64,
}

impl StateDir {
    /// Opens (or creates) the state directory `dir` with `cache_capacity` bytes of
    /// sled page cache, off the async threads (opening replays the seen-set journal and
    /// reads the per-host counts, which can take a moment on a large directory).
    ///
    /// # Errors
    /// [`Error::State`] for a directory that is locked by another process, damaged,
    /// foreign or cannot be created.
    pub async fn open(dir: &Path, cache_capacity: u64) -> Result<StateDir, Error> {
        let made = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::state(dir, trawl_frontier::Error::Io(e)))?;
        let d = dir.to_path_buf();
        // Leases cut short by a crash count as attempts; the engine fails a URL leased
        // too often itself (with a record), so the frontier never quarantines on open.
        let opts = Options::default()
            .cache_capacity(cache_capacity)
            .max_attempts(u32::MAX);
        let opened = tokio::task::spawn_blocking(move || Frontier::open(&d, opts))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let frontier = match opened {
            Ok(f) => f,
            Err(e) => {
                if made {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(Error::state(dir, e));
            }
        };
        let report = frontier.open_report();
        if report.requeued > 0 {
            tracing::info!(
                requeued = report.requeued,
                "recovered leases left by an earlier run"
            );
        }
        let frontier = Arc::new(frontier);
        Ok(StateDir {
            dir: dir.to_path_buf(),
            frontier: frontier.clone(),
            sled: Some(frontier),
            made,
            cache_capacity,
        })
    }

    /// Opens `dir` for a crawl whose frontier is `store`, a shared one that several
    /// workers use (such as `trawl-frontier-redis`): the crawl's configuration, its
    /// counters and its outputs' checkpoints are this worker's, in the store; `dir`
    /// holds this worker's local files (its broken-link log and history), and is
    /// created if need be.
    ///
    /// # Errors
    /// [`Error::State`] when `dir` cannot be created.
    pub fn open_shared(dir: &Path, store: Arc<dyn FrontierStore>) -> Result<StateDir, Error> {
        let made = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::state(dir, trawl_frontier::Error::Io(e)))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            frontier: store,
            sled: None,
            made,
            cache_capacity: 0,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The configuration of the crawl this directory holds, or `None` for a new one.
    ///
    /// # Errors
    /// [`Error::State`] when it is stored but does not read (a damaged directory).
    pub fn stored_config(&self) -> Result<Option<CrawlConfig>, Error> {
        stored_config(&self.dir, &*self.frontier)
    }

    /// The counters of earlier runs.
    pub(crate) fn persisted(&self) -> Result<Persisted, Error> {
        match self
            .frontier
            .checkpoint(ENGINE_CHECKPOINT)
            .map_err(|e| Error::state(&self.dir, e))?
        {
            None => Ok(Persisted::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::damaged(
                    &self.dir,
                    format!("the crawl's stored counters (pages, bytes, time, budgets) do not read: {e}"),
                )
            }),
        }
    }

    /// Opens the outputs at their last checkpoints (cutting off what was written after
    /// them), or creates them for a new crawl, never over an existing file.
    pub(crate) fn open_sinks(&self, cfg: &CrawlConfig, fresh: bool) -> Result<Vec<Box<dyn Sink>>, Error> {
        let durability = if cfg.output.fsync {
            Durability::Fsync
        } else {
            Durability::Os
        };
        let checkpoint = |name: &str| -> Result<Option<Checkpoint>, Error> {
            match self
                .frontier
                .checkpoint(name)
                .map_err(|e| Error::state(&self.dir, e))?
            {
                Some(b) => Ok(Some(Checkpoint::from_bytes(&b)?)),
                None => Ok(None),
            }
        };
        let guard_fresh = |path: &Path| -> Result<(), Error> {
            if fresh && std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                return Err(Error::Outputs(format!(
                    "{} already exists; remove it or choose another output file (a new crawl never overwrites output)",
                    path.display()
                )));
            }
            Ok(())
        };
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(path) = &cfg.output.jsonl {
            sinks.push(match checkpoint("jsonl")? {
                Some(cp) => Box::new(JsonlSink::resume(path, &cp, durability)?),
                None => {
                    guard_fresh(path)?;
                    Box::new(JsonlSink::create(path, durability)?)
                }
            });
        }
        if let Some(path) = &cfg.output.csv {
            sinks.push(match checkpoint("csv")? {
                Some(cp) => Box::new(CsvSink::resume(path, &cp, durability)?),
                None => {
                    guard_fresh(path)?;
                    Box::new(CsvSink::create(path, durability)?)
                }
            });
        }
        if let Some(path) = &cfg.output.warc {
            let opts = WarcOptions::default().durability(durability);
            // The CDXJ index next to the WARC is cut back with it, to its own
            // checkpoint (a crawl begun before trawl wrote one starts its index now).
            let index = cdxj_path(path);
            let index_cp = checkpoint(CDXJ_CHECKPOINT)?;
            sinks.push(match checkpoint("warc")? {
                Some(cp) => {
                    if index_cp.is_none() {
                        tracing::warn!(index = %index.display(), "this crawl's WARC has no CDXJ index yet: it starts now and lacks the records written before");
                    }
                    Box::new(WarcSink::resume(path, &cp, opts)?.with_cdxj(&index, index_cp.as_ref())?)
                }
                None => {
                    guard_fresh(path)?;
                    guard_fresh(&index)?;
                    Box::new(WarcSink::create(path, opts)?.with_cdxj(&index, None)?)
                }
            });
        }
        // The history a recrawl revisits from, in the state directory: always kept.
        sinks.push(Box::new(HistorySink::open(
            &self.dir.join(HISTORY_FILE),
            checkpoint("history")?.as_ref(),
            durability,
        )?));
        Ok(sinks)
    }

    /// Opens the broken-link log at its checkpoint, with the lines it holds up to it.
    pub(crate) fn open_broken(&self, cfg: &CrawlConfig) -> Result<(BrokenSink, Vec<BrokenLink>), Error> {
        let durability = if cfg.output.fsync {
            Durability::Fsync
        } else {
            Durability::Os
        };
        let cp = match self
            .frontier
            .checkpoint(BROKEN_CHECKPOINT)
            .map_err(|e| Error::state(&self.dir, e))?
        {
            Some(b) => Some(Checkpoint::from_bytes(&b)?),
            None => None,
        };
        let path = self.dir.join(BROKEN_FILE);
        let lines = match &cp {
            Some(cp) => BrokenSink::read(&path, cp)?.collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok((BrokenSink::open(&path, cp.as_ref(), durability)?, lines))
    }

    /// Closes the directory and removes it if this open made it: a new crawl that
    /// could not start leaves nothing behind.
    pub(crate) fn discard_if_new(self) {
        let StateDir {
            dir,
            frontier,
            sled,
            made,
            ..
        } = self;
        drop((frontier, sled));
        if made {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn stored_config(dir: &Path, frontier: &dyn FrontierStore) -> Result<Option<CrawlConfig>, Error> {
    match frontier.meta("config").map_err(|e| Error::state(dir, e))? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::damaged(dir, format!("the stored configuration does not read: {e}"))),
    }
}

/// What the outputs of a configuration are, as flags (for messages).
pub(crate) fn describe_outputs(o: &OutputConfig) -> String {
    let mut v = Vec::new();
    for p in [&o.jsonl, &o.csv].into_iter().flatten() {
        v.push(format!("-o {}", p.display()));
    }
    if let Some(p) = &o.warc {
        v.push(format!("--warc {}", p.display()));
    }
    if v.is_empty() {
        "no output".into()
    } else {
        v.join(" ")
    }
}

/// Keeps robots.txt answers in the frontier, so a resumed crawl does not fetch them
/// again and they live in the one state directory.
///
/// The fetcher calls it from its async tasks, and both calls take the frontier's lock,
/// which an ack or a lease can hold for a while (a write waits while the seen set's
/// memtable is being sealed): each one runs as blocking work
/// ([`tokio::task::block_in_place`]), so the runtime hands that worker's other tasks to
/// another thread instead of stalling them. A broad crawl makes one of each per host.
pub(crate) struct FrontierRobots(pub(crate) Arc<dyn FrontierStore>);

/// Runs `f`, as blocking work when on a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl RobotsStore for FrontierRobots {
    fn load(&self, origin: &str) -> Option<StoredRobots> {
        blocking(|| {
            let id = self.0.host_id(origin).ok()??;
            let e = self.0.robots(id).ok()??;
            Some(StoredRobots {
                status: e.status,
                fetched_at: UNIX_EPOCH + Duration::from_millis(e.fetched_at_ms),
                body: e.body,
            })
        })
    }

    fn save(&self, origin: &str, answer: &StoredRobots) {
        blocking(|| self.save_now(origin, answer));
    }
}

impl FrontierRobots {
    fn save_now(&self, origin: &str, answer: &StoredRobots) {
        if let Ok(Some(id)) = self.0.host_id(origin) {
            let entry = RobotsEntry {
                status: answer.status,
                fetched_at_ms: answer
                    .fetched_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                body: answer.body.clone(),
            };
            if let Err(e) = self.0.set_robots(id, &entry) {
                tracing::warn!(origin, error = %e, "cannot store robots.txt in the frontier");
            }
        }
    }
}

/// A crawl's state directory opened read-only, for `trawl status` and `trawl export`:
/// leases a crashed run left are reported as leased and stay as they are, and nothing
/// is requeued, quarantined, repaired or written.
#[derive(Debug)]
pub struct StateReader {
    dir: PathBuf,
    frontier: Frontier,
}

impl StateReader {
    /// Opens `dir` read-only.
    ///
    /// # Errors
    /// [`Error::State`] for a directory that does not exist, is locked by a running
    /// crawl ([`Error::is_locked`]), is damaged or foreign.
    pub fn open(dir: &Path) -> Result<StateReader, Error> {
        let opts = Options::default().cache_capacity(8 << 20).read_only(true);
        let frontier = Frontier::open(dir, opts).map_err(|e| Error::state(dir, e))?;
        Ok(StateReader {
            dir: dir.to_path_buf(),
            frontier,
        })
    }

    /// The stored configuration, `None` when the directory holds no crawl yet.
    ///
    /// # Errors
    /// [`Error::State`] when it does not read.
    pub fn config(&self) -> Result<Option<CrawlConfig>, Error> {
        stored_config(&self.dir, &self.frontier)
    }

    /// URLs by state.
    pub fn counts(&self) -> Counts {
        // The sled frontier keeps its counts in memory: this read cannot fail.
        self.frontier.counts().unwrap_or_default()
    }

    /// Every host with its counts and persisted politeness.
    pub fn hosts(&self) -> Vec<HostInfo> {
        // The sled frontier keeps its host table in memory: this read cannot fail.
        self.frontier.hosts().unwrap_or_default()
    }

    /// Every known URL with its state, finished ones first (a scan).
    pub fn urls(&self) -> impl Iterator<Item = Result<UrlRecord, Error>> + '_ {
        self.frontier
            .urls()
            .map(|r| r.map_err(|e| Error::state(&self.dir, e)))
    }

    /// Checks that every URL is in exactly one state and the counts agree.
    ///
    /// # Errors
    /// [`Error::State`] with what is inconsistent.
    pub fn verify(&self) -> Result<Counts, Error> {
        self.frontier.verify().map_err(|e| Error::state(&self.dir, e))
    }

    /// The last progress file the crawl wrote.
    pub fn progress(&self) -> Option<Progress> {
        read_progress(&self.dir)
    }

    /// The WARC files this crawl wrote and their CDXJ index, each with the number of
    /// its bytes that acked records fill (a crash may have left more after them);
    /// `None` for a crawl without WARC output.
    ///
    /// # Errors
    /// [`Error::State`] when a stored checkpoint does not read.
    pub fn archive(&self) -> Result<Option<ArchiveFiles>, Error> {
        let Some(base) = self.config()?.and_then(|c| c.output.warc) else {
            return Ok(None);
        };
        let read = |name: &str| -> Result<Option<Checkpoint>, Error> {
            match self
                .frontier
                .checkpoint(name)
                .map_err(|e| Error::state(&self.dir, e))?
            {
                Some(b) => Ok(Some(Checkpoint::from_bytes(&b)?)),
                None => Ok(None),
            }
        };
        let Some(cp) = read("warc")? else {
            return Ok(Some(ArchiveFiles::default()));
        };
        let mut warcs = Vec::new();
        for i in 0..cp.file {
            let p = trawl_sink::rotated_path(&base, i);
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            warcs.push((p, len));
        }
        warcs.push((trawl_sink::rotated_path(&base, cp.file), cp.offset));
        let index = read(CDXJ_CHECKPOINT)?.map(|c| (cdxj_path(&base), c.offset));
        Ok(Some(ArchiveFiles { warcs, index }))
    }
}

impl StateReader {
    /// The broken-link report: every link target that ended in a 4xx or 5xx or a
    /// network error, with the first pages found to link to it and their anchor text,
    /// in the order the targets failed (what `trawl export --what broken` writes).
    ///
    /// # Errors
    /// [`Error::State`] when the stored checkpoint does not read, [`Error::Sink`] when
    /// the log is shorter than it or a line does not read.
    pub fn broken_links(&self) -> Result<Vec<BrokenLink>, Error> {
        let cp = match self
            .frontier
            .checkpoint(BROKEN_CHECKPOINT)
            .map_err(|e| Error::state(&self.dir, e))?
        {
            Some(b) => Checkpoint::from_bytes(&b)?,
            None => Checkpoint::default(),
        };
        let lines = BrokenSink::read(&self.dir.join(BROKEN_FILE), &cp)?.collect::<Result<Vec<_>, _>>()?;
        Ok(trawl_sink::merge_broken(lines))
    }
}

/// The archive files of a crawl ([`StateReader::archive`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveFiles {
    /// The WARC files in order, each with its acked length.
    pub warcs: Vec<(PathBuf, u64)>,
    /// The CDXJ index with its acked length, when the crawl wrote one.
    pub index: Option<(PathBuf, u64)>,
}

/// Reads the `progress.json` a crawl writes into its state directory every 2 s (the
/// one view of a running crawl, whose directory is locked).
pub fn read_progress(dir: &Path) -> Option<Progress> {
    let raw = std::fs::read(dir.join(PROGRESS_FILE)).ok()?;
    serde_json::from_slice(&raw).ok()
}
