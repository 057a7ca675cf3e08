//! Streaming body decoding with caps: wire bytes go in chunk by chunk, decoded bytes
//! come out into a buffer that refuses to grow past the size cap, and the ratio of
//! decoded to wire bytes is checked as it goes. A gzip bomb therefore stops at the cap
//! after decoding at most the cap, whatever it would have expanded to.
//!
//! trawl decodes bodies itself (reqwest's decompression is off) so that it can count
//! the bytes on the wire, cap what comes after decompression, and cap the ratio.

use std::io::{self, Write};

/// A `Content-Encoding` trawl can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No encoding.
    Identity,
    /// `gzip` (also `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped, or raw deflate as some servers send it.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl ContentEncoding {
    /// Reads a `Content-Encoding` header value; `None` for one trawl cannot decode.
    /// Only the last of several encodings is supported, which is what servers send.
    pub fn from_header(value: &str) -> Option<ContentEncoding> {
        let last = value.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase();
        Some(match last.as_str() {
            "" | "identity" => ContentEncoding::Identity,
            "gzip" | "x-gzip" => ContentEncoding::Gzip,
            "deflate" => ContentEncoding::Deflate,
            "br" => ContentEncoding::Brotli,
            "zstd" => ContentEncoding::Zstd,
            _ => return None,
        })
    }
}

/// Why a body was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More than `limit` bytes after decompression.
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// Decoded bytes outgrew the wire bytes by more than the allowed ratio.
    Ratio {
        /// The cap on decoded / wire.
        limit: u64,
    },
    /// The compressed stream is broken.
    Corrupt(String),
}

/// A `Vec` that refuses to grow past `cap` bytes.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.over = true;
            return Err(io::Error::other("body cap reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Identity(Capped),
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    Raw(flate2::write::DeflateDecoder<Capped>),
    /// Deflate before its first byte says which kind it is.
    DeflateUnknown(Capped),
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
    Zstd(zstd::stream::zio::Writer<Capped, zstd::stream::raw::Decoder<'static>>),
}

/// Decompression contexts kept for reuse: creating one costs more than decoding a
/// typical page.
static ZSTD_POOL: std::sync::Mutex<Vec<zstd::stream::raw::Decoder<'static>>> =
    std::sync::Mutex::new(Vec::new());
const ZSTD_POOL_MAX: usize = 64;

fn zstd_decoder() -> io::Result<zstd::stream::raw::Decoder<'static>> {
    let pooled = ZSTD_POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match pooled {
        Some(d) => Ok(d),
        None => zstd::stream::raw::Decoder::new(),
    }
}

fn recycle_zstd(mut d: zstd::stream::raw::Decoder<'static>) {
    use zstd::stream::raw::Operation;
    if d.reinit().is_ok() {
        let mut pool = ZSTD_POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < ZSTD_POOL_MAX {
            pool.push(d);
        }
    }
}

impl Inner {
    fn sink(&self) -> &Capped {
        match self {
            Inner::Identity(c) | Inner::DeflateUnknown(c) => c,
            Inner::Gzip(d) => d.get_ref(),
            Inner::Zlib(d) => d.get_ref(),
            Inner::Raw(d) => d.get_ref(),
            Inner::Brotli(d) => d.get_ref(),
            Inner::Zstd(d) => d.writer(),
        }
    }
}

/// Decodes one body incrementally under a size cap and a ratio cap.
pub struct BodyDecoder {
    inner: Inner,
    wire: u64,
    max_body: u64,
    max_ratio: u64,
}

impl std::fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyDecoder")
            .field("wire", &self.wire)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// Bytes a ratio check waits for, so that tiny bodies with a large ratio (a short
/// compressed page) are not refused.
const RATIO_GRACE: u64 = 64 * 1024;

impl BodyDecoder {
    /// A decoder for `encoding`, stopping past `max_body` decoded bytes or a decoded /
    /// wire ratio over `max_ratio` (checked once 64 KiB have been decoded).
    pub fn new(encoding: ContentEncoding, max_body: u64, max_ratio: u64) -> io::Result<BodyDecoder> {
        let cap = Capped {
            // Most pages fit: fewer reallocations and copies while decoding.
            buf: Vec::with_capacity((max_body as usize).min(32 << 10)),
            cap: max_body.min(usize::MAX as u64) as usize,
            over: false,
        };
        let inner = match encoding {
            ContentEncoding::Identity => Inner::Identity(cap),
            ContentEncoding::Gzip => Inner::Gzip(flate2::write::MultiGzDecoder::new(cap)),
            ContentEncoding::Deflate => Inner::DeflateUnknown(cap),
            ContentEncoding::Brotli => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(cap, 4096))),
            ContentEncoding::Zstd => Inner::Zstd(zstd::stream::zio::Writer::new(cap, zstd_decoder()?)),
        };
        Ok(BodyDecoder {
            inner,
            wire: 0,
            max_body,
            max_ratio,
        })
    }

    /// Bytes received on the wire so far.
    pub fn wire_bytes(&self) -> u64 {
        self.wire
    }

    /// Bytes decoded so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.inner.sink().buf.len() as u64
    }

    fn error(&self, e: io::Error) -> BodyError {
        if self.inner.sink().over {
            BodyError::TooLarge { limit: self.max_body }
        } else {
            BodyError::Corrupt(e.to_string())
        }
    }

    fn check_ratio(&self) -> Result<(), BodyError> {
        let decoded = self.decoded_bytes();
        if decoded > RATIO_GRACE && decoded > self.wire.saturating_mul(self.max_ratio) {
            return Err(BodyError::Ratio {
                limit: self.max_ratio,
            });
        }
        Ok(())
    }

    /// Feeds the next chunk of wire bytes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        self.wire += chunk.len() as u64;
        if let Inner::DeflateUnknown(_) = self.inner
            && let Some(&first) = chunk.first()
        {
            // A zlib header has compression method 8 in the low nibble and a header
            // checksum that divides by 31.
            let zlib = first & 0x0f == 8
                && chunk.len() >= 2
                && u16::from_be_bytes([first, chunk[1]]).is_multiple_of(31);
            let Inner::DeflateUnknown(cap) = std::mem::replace(&mut self.inner, Inner::Identity(empty()))
            else {
                unreachable!("checked above")
            };
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(cap))
            } else {
                Inner::Raw(flate2::write::DeflateDecoder::new(cap))
            };
        }
        let result = match &mut self.inner {
            Inner::Identity(c) | Inner::DeflateUnknown(c) => c.write_all(chunk),
            Inner::Gzip(d) => d.write_all(chunk),
            Inner::Zlib(d) => d.write_all(chunk),
            Inner::Raw(d) => d.write_all(chunk),
            Inner::Brotli(d) => d.write_all(chunk),
            Inner::Zstd(d) => d.write_all(chunk),
        };
        result.map_err(|e| self.error(e))?;
        self.check_ratio()
    }

    /// The bytes decoded so far, for a caller that keeps a capped prefix (robots.txt
    /// is read up to 500 KiB and the rest ignored).
    pub fn into_prefix(self) -> Vec<u8> {
        self.inner.sink().buf.clone()
    }

    /// Ends the body and returns the decoded bytes.
    pub fn finish(self) -> Result<Vec<u8>, BodyError> {
        let max_body = self.max_body;
        let wrap = |e: io::Error, over: bool| {
            if over {
                BodyError::TooLarge { limit: max_body }
            } else {
                BodyError::Corrupt(e.to_string())
            }
        };
        let capped = match self.inner {
            Inner::Identity(c) | Inner::DeflateUnknown(c) => c,
            Inner::Gzip(d) => d.finish().map_err(|e| wrap(e, false))?,
            Inner::Zlib(d) => d.finish().map_err(|e| wrap(e, false))?,
            Inner::Raw(d) => d.finish().map_err(|e| wrap(e, false))?,
            Inner::Brotli(mut d) => {
                d.flush().map_err(|e| wrap(e, d.get_ref().over))?;
                d.into_inner()
                    .map_err(|_| BodyError::Corrupt("brotli stream ended early".into()))?
            }
            Inner::Zstd(mut d) => {
                d.flush().map_err(|e| wrap(e, d.writer().over))?;
                let (capped, dec) = d.into_inner();
                recycle_zstd(dec);
                capped
            }
        };
        Ok(capped.buf)
    }
}

fn empty() -> Capped {
    Capped {
        buf: Vec::new(),
        cap: 0,
        over: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    fn feed(enc: ContentEncoding, wire: &[u8], max: u64, ratio: u64) -> Result<Vec<u8>, BodyError> {
        let mut d = BodyDecoder::new(enc, max, ratio).expect("decoder");
        for chunk in wire.chunks(1000) {
            d.push(chunk)?;
        }
        d.finish()
    }

    #[test]
    fn every_encoding_round_trips() {
        let page = b"<html>".repeat(2000);
        assert_eq!(
            feed(ContentEncoding::Identity, &page, 1 << 20, 1000),
            Ok(page.clone())
        );
        assert_eq!(
            feed(ContentEncoding::Gzip, &gzip(&page), 1 << 20, 1000),
            Ok(page.clone())
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&page).expect("zlib");
        assert_eq!(
            feed(
                ContentEncoding::Deflate,
                &z.finish().expect("zlib"),
                1 << 20,
                1000
            ),
            Ok(page.clone())
        );
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(&page).expect("deflate");
        assert_eq!(
            feed(
                ContentEncoding::Deflate,
                &r.finish().expect("deflate"),
                1 << 20,
                1000
            ),
            Ok(page.clone())
        );
        let mut b = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut b, 4096, 5, 22);
            w.write_all(&page).expect("br");
        }
        assert_eq!(feed(ContentEncoding::Brotli, &b, 1 << 20, 1000), Ok(page.clone()));
        let zs = zstd::bulk::compress(&page, 3).expect("zstd");
        assert_eq!(feed(ContentEncoding::Zstd, &zs, 1 << 20, 1000), Ok(page));
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let mut d = BodyDecoder::new(ContentEncoding::Gzip, 1 << 20, u64::MAX).expect("decoder");
        let mut result = Ok(());
        for chunk in bomb.chunks(16 * 1024) {
            result = d.push(chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(BodyError::TooLarge { limit: 1 << 20 }));
        assert!(d.wire_bytes() < 64 * 1024, "read {} wire bytes", d.wire_bytes());
        assert!(d.decoded_bytes() <= 1 << 20);
        let ratio = feed(ContentEncoding::Gzip, &bomb, 1 << 30, 100);
        assert_eq!(ratio, Err(BodyError::Ratio { limit: 100 }));
    }

    #[test]
    fn headers_and_garbage() {
        assert_eq!(ContentEncoding::from_header("GZIP"), Some(ContentEncoding::Gzip));
        assert_eq!(
            ContentEncoding::from_header("identity, br"),
            Some(ContentEncoding::Brotli)
        );
        assert_eq!(ContentEncoding::from_header("compress"), None);
        assert!(matches!(
            feed(ContentEncoding::Gzip, b"not gzip at all", 1 << 20, 1000),
            Err(BodyError::Corrupt(_))
        ));
        assert_eq!(
            feed(ContentEncoding::Identity, &[1u8; 2000], 1000, 1000),
            Err(BodyError::TooLarge { limit: 1000 })
        );
    }
}
