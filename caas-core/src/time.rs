//! Time as an input. The core never reads the system clock itself: it asks a
//! [`Clock`], so rate limits, token expiry and typing timeouts are tested by moving a
//! [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds since the Unix epoch (UTC).
///
/// Serialized as RFC 3339 in UTC with nanoseconds (`2026-11-22T10:04:05.123456789Z`),
/// which round-trips exactly; deserializing also accepts other RFC 3339 offsets and
/// integer nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(n: u64) -> Self {
        Self(n)
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// From seconds since the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-22T10:04:05.123Z`.
    pub fn to_rfc3339(self) -> String {
        self.format(format!("{:03}", (self.0 / 1_000_000) % 1000))
    }

    /// `YYYY-MM-DDTHH:MM:SS.<fraction>Z`.
    fn format(self, fraction: String) -> String {
        let secs = self.0 / 1_000_000_000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{fraction}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with all nine fractional digits: the lossless form.
    pub fn to_rfc3339_nanos(self) -> String {
        self.format(format!("{:09}", self.0 % 1_000_000_000))
    }

    /// Parses RFC 3339 (`Z` or a numeric offset, any number of fractional digits up
    /// to nine). Times before 1970 are refused.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, crate::Error> {
        let bad = || crate::Error::invalid("timestamp", format!("`{s}` is not an RFC 3339 time"));
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, crate::Error> {
            let part = s.get(r).ok_or_else(bad)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u64>().map_err(|_| bad())
        };
        let (y, mo, d, h, mi, sec) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        if !(1..=12).contains(&mo)
            || d == 0
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 60
        {
            return Err(bad());
        }
        let mut i = 19;
        let mut nanos = 0u64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = i - start;
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            nanos = num(start..i)? * 10u64.pow((9 - digits) as u32);
        }
        let offset: i64 = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let secs = (num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60) as i64;
                if *sign == b'+' { secs } else { -secs }
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let local = days * 86_400 + (h * 3600 + mi * 60 + sec.min(59)) as i64;
        let utc = u64::try_from(local - offset).map_err(|_| bad())?;
        Ok(Timestamp(
            utc.checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(nanos))
                .ok_or_else(bad)?,
        ))
    }
}

/// A UTC calendar day, as days since 1970-01-01: what usage is metered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub u32);

impl Day {
    /// The day `t` falls on (UTC).
    pub fn of(t: Timestamp) -> Self {
        Day(u32::try_from(t.as_secs() / 86_400).unwrap_or(u32::MAX))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        let bad = || crate::Error::invalid("date", format!("`{s}` is not a date (YYYY-MM-DD)"));
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
        let (y, m, d) = match (num(0..4), num(5..7), num(8..10)) {
            (Some(y), Some(m), Some(d)) => (y, m, d),
            _ => return Err(bad()),
        };
        if y < 1970
            || !(1..=12).contains(&m)
            || d == 0
            || u64::from(d) > days_in_month(u64::from(y), u64::from(m))
        {
            return Err(bad());
        }
        u32::try_from(days_from_civil(i64::from(y), m, d))
            .map(Day)
            .map_err(|_| bad())
    }

    /// Its month as `YYYYMM`.
    pub fn month(self) -> u32 {
        let (y, m, _) = civil_from_days(i64::from(self.0));
        u32::try_from(y).unwrap_or(0) * 100 + m
    }

    /// The first day of its month.
    pub fn month_start(self) -> Day {
        let (y, m, _) = civil_from_days(i64::from(self.0));
        Day(u32::try_from(days_from_civil(y, m, 1)).unwrap_or(0))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(i64::from(self.0));
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339_nanos())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or integer nanoseconds since the epoch")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                u64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("negative timestamp"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where the core gets the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time. Successive calls never go backwards.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock, made monotonic: it never returns a time earlier than one
/// it returned before, even when the wall clock steps back.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicU64,
}

impl SystemClock {
    /// A new system clock.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let prev = self.last.fetch_max(wall, Ordering::Relaxed);
        Timestamp(prev.max(wall))
    }
}

/// A clock that moves only when told to: the clock of every time-dependent test.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: AtomicU64::new(start.0),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.now.fetch_add(n, Ordering::SeqCst);
    }

    /// Sets the clock; it never moves backwards, so an earlier time is ignored.
    pub fn set(&self, t: Timestamp) {
        self.now.fetch_max(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T10:04:05.123Z
        assert_eq!(
            Timestamp::from_millis(1_795_341_845_123).to_rfc3339(),
            "2026-11-22T10:04:05.123Z"
        );
        // A leap day.
        assert_eq!(
            Timestamp::from_secs(951_782_400).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn serde_is_rfc3339_and_lossless() {
        let t = Timestamp::from_nanos(1_795_341_845_123_456_789);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-22T10:04:05.123456789Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1795341845123456789").unwrap(),
            t
        );
        let offset: Timestamp = serde_json::from_str("\"2026-11-22T12:04:05.5+02:00\"").unwrap();
        assert_eq!(offset, Timestamp::from_millis(1_795_341_845_500));
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T10:04:05",
            "2026-11-22T10:04:05.Z",
            "x",
            "1969-12-31T23:59:59Z",
            "2026-11-22T10:04:05.1234567891Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_round_trips(n in 0u64..=4_102_444_800_000_000_000) {
            let t = Timestamp::from_nanos(n);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339_nanos()).unwrap(), t);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap().as_millis(), t.as_millis());
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = Timestamp::parse_rfc3339(&s);
        }
    }

    #[test]
    fn days_parse_format_and_name_their_month() {
        let d = Day::parse("2026-12-07").unwrap();
        assert_eq!(d.to_string(), "2026-12-07");
        assert_eq!(d.month(), 202_612);
        assert_eq!(d.month_start().to_string(), "2026-12-01");
        assert_eq!(Day::of(Timestamp::from_secs(0)).to_string(), "1970-01-01");
        assert_eq!(Day::parse("2024-02-29").unwrap().to_string(), "2024-02-29");
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "1969-12-31",
            "x",
            "2026-12-07T00",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manual_clock_only_moves_forward() {
        let c = ManualClock::new(Timestamp::from_secs(10));
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), Timestamp::from_secs(15));
        c.set(Timestamp::from_secs(1));
        assert_eq!(c.now(), Timestamp::from_secs(15));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(a > Timestamp::from_secs(1_600_000_000));
    }
}
