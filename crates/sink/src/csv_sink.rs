//! CSV: one row per record, the nested fields flattened into the columns of
//! [`CSV_HEADER`].

use std::path::{Path, PathBuf};

use crate::file::OutFile;
use crate::{Checkpoint, Durability, Error, Exchange, PageRecord, Result, Sink};

/// The CSV columns, in order. The body is never written to CSV.
pub const CSV_HEADER: &[&str] = &[
    "url",
    "final_url",
    "status",
    "depth",
    "parent",
    "discovery",
    "fetched_at",
    "content_type",
    "redirect_to",
    "wire_bytes",
    "body_bytes",
    "queued_ms",
    "first_byte_ms",
    "total_ms",
    "title",
    "outlinks",
    "noindex",
    "nofollow",
    "content_hash",
    "error_kind",
    "error_message",
    "limits",
    "skipped",
    "protocol",
    "etag",
    "last_modified",
    "recrawl",
    "anchor",
];

/// Writes CSV (with a header row) through the `csv` crate, exactly-once across crashes.
#[derive(Debug)]
pub struct CsvSink {
    file: OutFile,
}

/// One CSV row, quoted as needed, with its line ending. Encoding a whole row before it
/// reaches the file means an error never leaves half a row behind.
fn encode_row<I, T>(fields: I) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::with_capacity(512));
    w.write_record(fields)
        .map_err(|e| Error::Serialize(Box::new(e)))?;
    w.into_inner()
        .map_err(|e| Error::Serialize(Box::new(e.into_error())))
}

impl CsvSink {
    /// Starts a new output at `path` and writes the header row.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn create(path: &Path, durability: Durability) -> Result<CsvSink> {
        let mut file = OutFile::open(path, 0, durability)?;
        file.write_all(&encode_row(CSV_HEADER)?)?;
        Ok(CsvSink { file })
    }

    /// Reopens the output at `path`, cut back to `checkpoint` (which always lies after
    /// the header row).
    ///
    /// # Errors
    /// [`Error::Behind`] when the file is shorter than the checkpoint.
    pub fn resume(path: &Path, checkpoint: &Checkpoint, durability: Durability) -> Result<CsvSink> {
        if checkpoint.file != 0 {
            return Err(Error::BadCheckpoint(format!(
                "CSV has one file, not {}",
                checkpoint.file + 1
            )));
        }
        if checkpoint.offset == 0 {
            return CsvSink::create(path, durability);
        }
        Ok(CsvSink {
            file: OutFile::open(path, checkpoint.offset, durability)?,
        })
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl Sink for CsvSink {
    fn name(&self) -> &str {
        "csv"
    }

    fn write(&mut self, r: &PageRecord, _exchange: Option<&Exchange<'_>>) -> Result<()> {
        let fields = [
            r.url.clone(),
            r.final_url.clone(),
            opt(&r.status),
            r.depth.to_string(),
            opt(&r.parent),
            r.discovery.as_str().to_string(),
            r.fetched_at.clone(),
            opt(&r.content_type),
            opt(&r.redirect_to),
            r.wire_bytes.to_string(),
            r.body_bytes.to_string(),
            format!("{:.3}", r.timings.queued_ms),
            format!("{:.3}", r.timings.first_byte_ms),
            format!("{:.3}", r.timings.total_ms),
            opt(&r.title),
            r.outlinks.to_string(),
            r.robots.noindex.to_string(),
            r.robots.nofollow.to_string(),
            opt(&r.content_hash),
            r.error.as_ref().map(|e| e.kind.clone()).unwrap_or_default(),
            r.error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
            r.limits.join("; "),
            opt(&r.skipped),
            opt(&r.protocol),
            opt(&r.etag),
            opt(&r.last_modified),
            opt(&r.recrawl),
            opt(&r.anchor),
        ];
        self.file.write_all(&encode_row(&fields)?)
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            file: 0,
            offset: self.file.commit()?,
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.file.path().to_path_buf()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureInfo;

    #[test]
    fn rows_parse_back_with_the_header() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.csv");
        let mut s = CsvSink::create(&path, Durability::Os).expect("create");
        let r = PageRecord {
            url: "http://a/,x".into(),
            title: Some("comma, \"quote\"".into()),
            status: Some(404),
            error: Some(FailureInfo {
                kind: "http-404".into(),
                message: "not found".into(),
            }),
            ..Default::default()
        };
        s.write(&r, None).expect("write");
        s.checkpoint().expect("checkpoint");
        let mut rd = csv::Reader::from_path(&path).expect("reader");
        let header: Vec<String> = rd.headers().expect("header").iter().map(String::from).collect();
        assert_eq!(header, CSV_HEADER);
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], "http://a/,x");
        assert_eq!(&rows[0][2], "404");
        assert_eq!(&rows[0][14], "comma, \"quote\"");
        assert_eq!(&rows[0][19], "http-404");
        let col = |name| CSV_HEADER.iter().position(|h| *h == name).expect("a column");
        assert_eq!(&rows[0][col("skipped")], "", "nothing skipped");
        assert_eq!(&rows[0][col("protocol")], "", "no response, no protocol");
        assert_eq!(rows[0].len(), CSV_HEADER.len());
    }

    #[test]
    fn a_skipped_body_has_its_column() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.csv");
        let mut s = CsvSink::create(&path, Durability::Os).expect("create");
        let r = PageRecord {
            url: "http://a/file.bin".into(),
            status: Some(200),
            content_type: Some("application/octet-stream".into()),
            skipped: Some(crate::SKIPPED_CONTENT_TYPE.into()),
            ..Default::default()
        };
        s.write(&r, None).expect("write");
        s.checkpoint().expect("checkpoint");
        let mut rd = csv::Reader::from_path(&path).expect("reader");
        let skipped = rd.headers().expect("header").iter().position(|h| h == "skipped");
        let row = rd.records().next().expect("a row").expect("row");
        assert_eq!(
            row.get(skipped.expect("a skipped column")),
            Some("skipped-content-type")
        );
        // JSON Lines: the key is there when set, and absent otherwise.
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["skipped"], "skipped-content-type");
        let plain = serde_json::to_value(PageRecord::default()).expect("json");
        assert!(plain.get("skipped").is_none());
    }
}
