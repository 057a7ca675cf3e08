//! [`Lastmod`]: a sitemap's `<lastmod>`, a W3C datetime (the profile of ISO 8601 that
//! the sitemap protocol names, <https://www.w3.org/TR/NOTE-datetime>), read as the span
//! of time it names.
//!
//! The forms are `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and a date with a time and a zone:
//! `YYYY-MM-DDThh:mmTZD`, `YYYY-MM-DDThh:mm:ssTZD` or `YYYY-MM-DDThh:mm:ss.sTZD`, where
//! the zone is `Z` or `+hh:mm` / `-hh:mm`. RFC 3339 timestamps are of the last forms
//! (its lower-case `t` and `z` and a space for the `T` are accepted too). A time
//! without a zone is not a W3C datetime and does not read. A date alone has no zone
//! either; it is read as the UTC day.

/// A W3C datetime as the span of time it names, in whole seconds since the Unix epoch
/// (UTC): `2026-10-21` is that whole day, `2026-10-21T10:00+02:00` that minute, and a
/// time with seconds (and fractions) that second.
///
/// A caller that asks "did this change before T?" should compare `latest`, which never
/// claims a page older than its sitemap says; one that orders pages by age may use
/// either end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lastmod {
    /// The first second of the span.
    pub earliest: i64,
    /// The last second of the span (`earliest` when seconds were given).
    pub latest: i64,
}

impl Lastmod {
    /// Reads a W3C datetime (see the module docs); `None` for anything else: another
    /// format, a field out of range (`2026-02-30`, `25:00`), text around it.
    pub fn parse(s: &str) -> Option<Lastmod> {
        let s = s.trim();
        let b = s.as_bytes();
        let year = digits(b, 0, 4)?;
        if b.len() == 4 {
            let start = days_from_civil(year, 1, 1);
            let end = days_from_civil(year + 1, 1, 1);
            return Some(span_days(start, end));
        }
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        if b.len() == 7 {
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            return Some(span_days(
                days_from_civil(year, month, 1),
                days_from_civil(ny, nm, 1),
            ));
        }
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let date = days_from_civil(year, month, day);
        if b.len() == 10 {
            return Some(span_days(date, date + 1));
        }
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
            return None;
        }
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        if hour > 23 || minute > 59 {
            return None;
        }
        let mut at = 16;
        let mut second = None;
        if b.get(at) == Some(&b':') {
            // 60 is a leap second: it reads as the last second of its minute.
            let sec = digits(b, at + 1, 2)?;
            if sec > 60 {
                return None;
            }
            second = Some(sec.min(59));
            at += 3;
            if b.get(at) == Some(&b'.') {
                let frac = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if frac == 0 {
                    return None;
                }
                at += 1 + frac;
            }
        }
        let offset = match b.get(at..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 => {
                let h = digits(b, at + 1, 2)?;
                expect(b, at + 3, b':')?;
                let m = digits(b, at + 4, 2)?;
                if h > 23 || m > 59 {
                    return None;
                }
                let o = (h * 3600 + m * 60) as i64;
                if *sign == b'-' { -o } else { o }
            }
            _ => return None,
        };
        let local = date * 86_400 + (hour * 3600 + minute * 60) as i64 + second.unwrap_or(0) as i64;
        let earliest = local - offset;
        Some(Lastmod {
            earliest,
            latest: if second.is_some() { earliest } else { earliest + 59 },
        })
    }
}

/// The span from day `start` up to (not including) day `end`.
fn span_days(start: i64, end: i64) -> Lastmod {
    Lastmod {
        earliest: start * 86_400,
        latest: end * 86_400 - 1,
    }
}

/// `n` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let d = b.get(at..at + n)?;
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0, |v, c| v * 10 + u32::from(c - b'0')))
}

fn expect(b: &[u8], at: usize, c: u8) -> Option<()> {
    (b.get(at) == Some(&c)).then_some(())
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: u32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> (i64, i64) {
        let l = Lastmod::parse(s).unwrap_or_else(|| panic!("{s:?} reads"));
        (l.earliest, l.latest)
    }

    #[test]
    fn every_w3c_form() {
        // 2026-10-21T00:00:00Z is 1792540800.
        let day = 1_792_540_800;
        assert_eq!(at("2026-10-21"), (day, day + 86_399));
        assert_eq!(at(" 2026-10-21\n"), (day, day + 86_399), "trimmed");
        assert_eq!(at("2026-10-21T00:00:00Z"), (day, day));
        assert_eq!(at("2026-10-21t00:00:00z"), (day, day));
        assert_eq!(at("2026-10-21 00:00:00Z"), (day, day));
        assert_eq!(at("2026-10-21T10:30Z"), (day + 37_800, day + 37_859));
        assert_eq!(at("2026-10-21T10:30:15.25Z"), (day + 37_815, day + 37_815));
        assert_eq!(at("2026-10"), (day - 20 * 86_400, day + 11 * 86_400 - 1));
        let y = at("2026");
        assert_eq!(y.1 - y.0 + 1, 365 * 86_400);
        assert_eq!(at("2024").1 - at("2024").0 + 1, 366 * 86_400, "a leap year");
        assert_eq!(at("1970-01-01T00:00:00Z"), (0, 0));
        assert_eq!(at("1969-12-31T23:59:59Z"), (-1, -1));
        assert_eq!(at("2024-02-29").0, 1_709_164_800);
        assert_eq!(at("2026-12").1, at("2026-12-31").1, "December ends the year");
    }

    #[test]
    fn zones_move_the_instant() {
        let z = at("2026-10-21T12:00:00Z");
        assert_eq!(at("2026-10-21T14:00:00+02:00"), z);
        assert_eq!(at("2026-10-21T07:30:00-04:30"), z);
        assert_eq!(at("2026-10-21T00:00:00+12:00").0, z.0 - 24 * 3600);
        // Across a day (and a year) boundary.
        assert_eq!(at("2026-12-31T23:00:00-01:00"), at("2027-01-01T00:00:00Z"));
        assert_eq!(at("2026-10-21T12:00+00:00"), (z.0, z.0 + 59));
        assert_eq!(
            at("2026-10-21T23:59:60Z"),
            at("2026-10-21T23:59:59Z"),
            "a leap second"
        );
    }

    #[test]
    fn anything_else_does_not_read() {
        for bad in [
            "",
            "yesterday",
            "26-10-21",
            "2026/10/21",
            "2026-1-21",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "2026-04-31",
            "2026-10-00",
            "2026-10-21T",
            "2026-10-21T10:00",
            "2026-10-21T10:00:00",
            "2026-10-21T24:00:00Z",
            "2026-10-21T10:60:00Z",
            "2026-10-21T10:00:61Z",
            "2026-10-21T10:00:00.Z",
            "2026-10-21T10:00:00+0200",
            "2026-10-21T10:00:00+02",
            "2026-10-21T10:00:00+24:00",
            "2026-10-21T10:00:00ZZ",
            "2026-10-21x",
            "2026-10-21T10:00:00Z trailing",
            "２０２６-10-21",
            "2026-10-21T1０:00:00Z",
        ] {
            assert_eq!(Lastmod::parse(bad), None, "{bad:?}");
        }
    }
}
