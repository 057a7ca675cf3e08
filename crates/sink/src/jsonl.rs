//! JSON Lines: one `PageRecord` as a JSON object per line.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::file::OutFile;
use crate::{Checkpoint, Durability, Error, Exchange, PageRecord, Result, Sink};

enum Target {
    File(OutFile),
    Stdout(std::io::BufWriter<std::io::Stdout>, u64),
}

/// Writes JSON Lines to a file (exactly-once across crashes) or to standard output
/// (no such promise; see the crate docs).
pub struct JsonlSink {
    target: Target,
    line: Vec<u8>,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            Target::File(file) => file.path().display().to_string(),
            Target::Stdout(..) => "<stdout>".to_string(),
        };
        f.debug_struct("JsonlSink").field("target", &target).finish()
    }
}

impl JsonlSink {
    /// Starts a new output at `path`, replacing what the file held.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or truncated.
    pub fn create(path: &Path, durability: Durability) -> Result<JsonlSink> {
        Ok(JsonlSink {
            target: Target::File(OutFile::open(path, 0, durability)?),
            line: Vec::with_capacity(4096),
        })
    }

    /// Reopens the output at `path`, cut back to `checkpoint`.
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint, [`Error::Io`]
    /// otherwise.
    pub fn resume(path: &Path, checkpoint: &Checkpoint, durability: Durability) -> Result<JsonlSink> {
        if checkpoint.file != 0 {
            return Err(Error::BadCheckpoint(format!(
                "JSON Lines has one file, not {}",
                checkpoint.file + 1
            )));
        }
        let file = OutFile::open(path, checkpoint.offset, durability)?;
        Ok(JsonlSink {
            target: Target::File(file),
            line: Vec::with_capacity(4096),
        })
    }

    /// Writes to standard output. There is nothing to cut back after a crash, so this
    /// sink has no exactly-once promise.
    pub fn stdout() -> JsonlSink {
        JsonlSink {
            target: Target::Stdout(std::io::BufWriter::new(std::io::stdout()), 0),
            line: Vec::new(),
        }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn write(&mut self, record: &PageRecord, _exchange: Option<&Exchange<'_>>) -> Result<()> {
        // Serialize into a reused buffer first, so a serialization error never leaves
        // half a line in the file.
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(|e| Error::Serialize(Box::new(e)))?;
        self.line.push(b'\n');
        match &mut self.target {
            Target::File(f) => f.write_all(&self.line),
            Target::Stdout(out, pos) => {
                *pos += self.line.len() as u64;
                out.write_all(&self.line)
                    .map_err(|e| Error::io(Path::new("<stdout>"), e))
            }
        }
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
        match &mut self.target {
            Target::File(f) => Ok(Checkpoint {
                file: 0,
                offset: f.commit()?,
            }),
            Target::Stdout(out, pos) => {
                out.flush().map_err(|e| Error::io(Path::new("<stdout>"), e))?;
                Ok(Checkpoint {
                    file: 0,
                    offset: *pos,
                })
            }
        }
    }

    fn paths(&self) -> Vec<PathBuf> {
        match &self.target {
            Target::File(f) => vec![f.path().to_path_buf()],
            Target::Stdout(..) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.jsonl");
        let mut s = JsonlSink::create(&path, Durability::Os).expect("create");
        for i in 0..3 {
            let r = PageRecord {
                url: format!("http://a/{i}"),
                title: Some("a \"quoted\"\nline".into()),
                ..Default::default()
            };
            s.write(&r, None).expect("write");
        }
        let cp = s.checkpoint().expect("checkpoint");
        assert_eq!(cp.offset, std::fs::metadata(&path).expect("meta").len());
        let text = std::fs::read_to_string(&path).expect("read");
        let back: Vec<PageRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("parses"))
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].url, "http://a/2");
        assert_eq!(back[0].title.as_deref(), Some("a \"quoted\"\nline"));
    }

    #[test]
    fn a_new_output_replaces_the_old_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.jsonl");
        std::fs::write(&path, "old\n").expect("write");
        let mut s = JsonlSink::create(&path, Durability::Fsync).expect("create");
        s.checkpoint().expect("checkpoint");
        assert_eq!(std::fs::read(&path).expect("read").len(), 0);
        assert!(matches!(
            JsonlSink::resume(&path, &Checkpoint { file: 0, offset: 10 }, Durability::Os),
            Err(Error::Behind {
                checkpoint: 10,
                found: 0,
                ..
            })
        ));
    }
}
