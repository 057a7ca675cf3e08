//! The file underneath every sink: buffered writes, a byte position that only counts
//! what reached the OS, truncation back to a checkpoint, and the durability modes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Durability, Error, Result};

/// Write buffer per output file. Large enough that a 16 KB page is one `write`.
const BUFFER: usize = 256 * 1024;

/// An output file opened for appending at a known position.
#[derive(Debug)]
pub(crate) struct OutFile {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written into the buffer or the file since offset 0.
    pos: u64,
    durability: Durability,
}

impl OutFile {
    /// Opens `path`, cutting it back to `offset` (0 for a new output). A file shorter
    /// than `offset` means output that the frontier counts as written is missing, which
    /// is an error rather than something to paper over.
    pub(crate) fn open(path: &Path, offset: u64, durability: Durability) -> Result<OutFile> {
        let io = |e| Error::io(path, e);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < offset {
            return Err(Error::Behind {
                path: path.to_path_buf(),
                checkpoint: offset,
                found: len,
            });
        }
        if len > offset {
            file.set_len(offset).map_err(io)?;
            if durability == Durability::Fsync {
                file.sync_all().map_err(io)?;
            }
        }
        let mut out = BufWriter::with_capacity(BUFFER, file);
        out.seek(SeekFrom::Start(offset)).map_err(io)?;
        Ok(OutFile {
            path: path.to_path_buf(),
            out,
            pos: offset,
            durability,
        })
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.out.write_all(data).map_err(|e| Error::io(&self.path, e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Hands everything buffered to the OS (and to the disk, in `Fsync` mode), and
    /// returns the position that is now safe to store as a checkpoint.
    pub(crate) fn commit(&mut self) -> Result<u64> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        if self.durability == Durability::Fsync {
            self.out
                .get_ref()
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(self.pos)
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The JSON lines of the file at `path` up to `checkpoint` (what was acked; a crash
/// may have left more after it), in the order written. With `missing_ok`, a missing
/// file with a zero checkpoint reads as empty.
pub(crate) fn read_json_lines<T: serde::de::DeserializeOwned + 'static>(
    path: &Path,
    checkpoint: &crate::Checkpoint,
    missing_ok: bool,
) -> Result<Box<dyn Iterator<Item = Result<T>>>> {
    use std::io::{BufRead, BufReader, Read};
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound && checkpoint.offset == 0 => {
            return Ok(Box::new(std::iter::empty()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < checkpoint.offset {
        return Err(Error::Behind {
            path: path.to_path_buf(),
            checkpoint: checkpoint.offset,
            found: len,
        });
    }
    let owned = path.to_path_buf();
    Ok(Box::new(
        BufReader::with_capacity(256 * 1024, f.take(checkpoint.offset))
            .lines()
            .map(move |line| {
                let line = line.map_err(|e| Error::io(&owned, e))?;
                serde_json::from_str(&line).map_err(|e| Error::Serialize(Box::new(e)))
            }),
    ))
}
