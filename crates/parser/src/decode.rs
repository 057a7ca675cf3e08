//! Bytes to text, the way browsers pick a charset: byte order mark, then the HTTP
//! charset, then `<meta charset>` or `http-equiv` in the first 1,024 bytes, then a guess
//! (chardetng), with windows-1252 as the fallback. Broken bytes never fail; they become
//! U+FFFD.
//!
//! One deliberate difference from browsers: when a page *declares* UTF-8 (in HTTP or in
//! `<meta>`) but its bytes are not valid UTF-8, the declaration is treated as a lie and
//! the charset is guessed instead. Browsers show such pages as replacement characters;
//! a crawler wants the text.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// Where the charset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetSource {
    /// A byte order mark.
    Bom,
    /// The `charset` parameter of the HTTP `Content-Type`.
    Http,
    /// `<meta charset>` or `<meta http-equiv=content-type>` in the first 1,024 bytes.
    Meta,
    /// chardetng's guess from the bytes.
    Detected,
    /// The declared UTF-8 was wrong (invalid bytes), so the charset was guessed.
    DetectedOverDeclared,
}

/// Decoded text with the charset that was used.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    /// The text; borrowed when the input was valid UTF-8 already.
    pub text: Cow<'a, str>,
    /// The encoding used.
    pub encoding: &'static Encoding,
    /// Why that encoding.
    pub source: CharsetSource,
    /// Whether some bytes could not be decoded and were replaced.
    pub had_errors: bool,
}

/// How many bytes the `<meta>` prescan looks at, as in the HTML standard.
const PRESCAN: usize = 1024;

/// How many bytes chardetng sees. Enough for a confident guess, cheap on big pages.
const DETECT_BYTES: usize = 64 * 1024;

/// The charset parameter of a `Content-Type` header value, if any.
pub fn charset_from_content_type(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']))
    })
}

/// Finds a charset declared in `<meta>` within the first 1,024 bytes: a simplified form
/// of the HTML standard's prescan that handles the two common spellings.
pub fn prescan_meta(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(PRESCAN)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut i = 0;
    while let Some(p) = find(&lower[i..], b"<meta") {
        let start = i + p + 5;
        let end = lower[start..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = find(tag, b"charset") {
            let mut rest = &tag[c + 7..];
            while let Some((&b, r)) = rest.split_first() {
                if b == b'=' || b == b' ' || b == b'"' || b == b'\'' {
                    rest = r;
                } else {
                    break;
                }
            }
            let label_end = rest
                .iter()
                .position(|&c| matches!(c, b'"' | b'\'' | b' ' | b';' | b'/' | b'>'))
                .unwrap_or(rest.len());
            if let Some(enc) = Encoding::for_label(&rest[..label_end]) {
                // A page cannot really be in UTF-16 if its meta tag is readable as ASCII.
                return Some(if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                    UTF_8
                } else {
                    enc
                });
            }
        }
        i = end;
        if i >= lower.len() {
            break;
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn detect(bytes: &[u8]) -> &'static Encoding {
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &bytes[..bytes.len().min(DETECT_BYTES)];
    det.feed(sample, sample.len() == bytes.len());
    det.guess(None, chardetng::Utf8Detection::Allow)
}

/// Decodes `bytes`, given the charset label from HTTP if there was one.
pub fn decode<'a>(bytes: &'a [u8], http_charset: Option<&str>) -> Decoded<'a> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return Decoded {
            text,
            encoding: enc,
            source: CharsetSource::Bom,
            had_errors,
        };
    }
    let declared = http_charset
        .and_then(|l| Encoding::for_label(l.as_bytes()))
        .map(|e| (e, CharsetSource::Http))
        .or_else(|| prescan_meta(bytes).map(|e| (e, CharsetSource::Meta)));
    let (enc, source) = match declared {
        Some((enc, _)) if enc == UTF_8 && std::str::from_utf8(bytes).is_err() => {
            let guess = detect(bytes);
            // A guess of UTF-8 for invalid UTF-8 means nothing better was found.
            (
                if guess == UTF_8 { UTF_8 } else { guess },
                CharsetSource::DetectedOverDeclared,
            )
        }
        Some(d) => d,
        None if std::str::from_utf8(bytes).is_ok() => (UTF_8, CharsetSource::Detected),
        None => {
            let guess = detect(bytes);
            (
                if guess == UTF_8 { WINDOWS_1252 } else { guess },
                CharsetSource::Detected,
            )
        }
    };
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    Decoded {
        text,
        encoding: enc,
        source,
        had_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_charsets() {
        assert_eq!(
            charset_from_content_type("text/html; charset=Shift_JIS"),
            Some("Shift_JIS")
        );
        assert_eq!(
            charset_from_content_type("text/html;CHARSET=\"utf-8\""),
            Some("utf-8")
        );
        assert_eq!(charset_from_content_type("text/html"), None);
    }

    #[test]
    fn meta_prescan() {
        assert_eq!(
            prescan_meta(b"<html><head><meta charset=\"windows-1251\">"),
            Some(encoding_rs::WINDOWS_1251)
        );
        assert_eq!(
            prescan_meta(b"<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-2\">"),
            Some(encoding_rs::ISO_8859_2)
        );
        assert_eq!(prescan_meta(b"<meta charset=utf-16>"), Some(UTF_8));
        assert_eq!(prescan_meta(b"<meta name=x>"), None);
    }

    #[test]
    fn order_of_precedence() {
        let bom = b"\xEF\xBB\xBFhi";
        let d = decode(bom, Some("windows-1252"));
        assert_eq!((d.text.as_ref(), d.source), ("hi", CharsetSource::Bom));
        let latin = b"caf\xE9";
        let d = decode(latin, Some("iso-8859-1"));
        assert_eq!((d.text.as_ref(), d.source), ("café", CharsetSource::Http));
        let lying = "Привет, мир! Съешь же ещё этих мягких французских булок.".as_bytes();
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(std::str::from_utf8(lying).expect("utf-8"));
        let d = decode(&cp1251, Some("utf-8"));
        assert_eq!(d.encoding, encoding_rs::WINDOWS_1251);
        assert_eq!(d.source, CharsetSource::DetectedOverDeclared);
        assert!(d.text.contains("Привет"));
        let broken = b"\xFF\xFEnot really utf-16? \x80\x81";
        let d = decode(&broken[2..], Some("utf-8"));
        assert!(!d.text.is_empty(), "broken bytes never fail");
    }
}
