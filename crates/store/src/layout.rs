//! Where things live under the data directory, and the only code that builds those paths.
//!
//! ```text
//! <data>/index.sqlite3                                   the index (WAL mode)
//! <data>/snapshots/<camera>/<YYYYMMDD>/<id>-<taken_at_us>.jpg       a committed snapshot
//! <data>/snapshots/<camera>/<YYYYMMDD>/.<id>-<taken_at_us>.jpg.tmp  a save in progress
//! <data>/lost+found/                                     files reconciliation set aside
//! ```
//!
//! Every path component is produced here from validated values only: a [`CameraId`] (which
//! admits nothing but `[A-Za-z0-9_-]{1,32}`, so never `.`, `..` or a separator), the UTC day
//! and the numeric id and time. No string from a request is ever joined onto a path. The
//! file name carries the row's id *and* time, so reconciliation can match a file to its
//! index row, and re-create the row from the file alone (camera from the directory, time
//! from the name, size and dimensions from the JPEG).
//!
//! This module must never touch the filesystem; it only computes and parses names.

use std::path::{Component, Path, PathBuf};

use espcam_proto::CameraId;

/// The index database's file name in the data directory.
pub(crate) const DB_FILE: &str = "index.sqlite3";
/// The directory holding one subdirectory per camera.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";
/// Where reconciliation moves files it cannot index, instead of deleting them.
pub(crate) const LOST_FOUND_DIR: &str = "lost+found";

/// Latest accepted capture time, 9999-12-31T23:59:59.999999Z: keeps the day directory at
/// eight digits and the value within SQLite's signed 64-bit integers.
pub const MAX_TAKEN_AT_US: u64 = 253_402_300_799_999_999;

const US_PER_DAY: u64 = 86_400_000_000;

/// The UTC calendar day of `taken_at_us` as the number `YYYYMMDD`.
pub(crate) fn day_number(taken_at_us: u64) -> u32 {
    // Days since the epoch fit an i64 for any u64 of microseconds.
    let days = (taken_at_us / US_PER_DAY) as i64;
    let (y, m, d) = civil_from_days(days);
    // y is in 1970..=584_554 for any u64 input; callers cap the time at MAX_TAKEN_AT_US
    // so the result has eight digits.
    (y as u32) * 10_000 + m * 100 + d
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: shifts the epoch to 0000-03-01 so leap days fall at
/// the end of each 400-year era, then works in eras, years of era and days of year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The committed file name of snapshot `id` taken at `taken_at_us`.
pub(crate) fn file_name(id: i64, taken_at_us: u64) -> String {
    format!("{id}-{taken_at_us}.jpg")
}

/// The temporary name a save writes before renaming to [`file_name`]. Hidden (leading dot)
/// and with a suffix no committed file has, so it can never be mistaken for one.
pub(crate) fn temp_name(id: i64, taken_at_us: u64) -> String {
    format!(".{id}-{taken_at_us}.jpg.tmp")
}

/// Whether `name` is a temporary file of ours (a save that never finished).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".jpg.tmp")
}

/// Parses a committed file name back into `(id, taken_at_us)`. Strict: only names that
/// [`file_name`] produces (no leading zeros, no sign, id ≥ 1), so the mapping is one to one.
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, u64)> {
    let stem = name.strip_suffix(".jpg")?;
    let (id, t) = stem.split_once('-')?;
    let id: i64 = canonical_digits(id)?.parse().ok()?;
    let t: u64 = canonical_digits(t)?.parse().ok()?;
    (id >= 1 && t <= MAX_TAKEN_AT_US).then_some((id, t))
}

/// `s` if it is a non-empty run of ASCII digits without a superfluous leading zero.
fn canonical_digits(s: &str) -> Option<&str> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then_some(s)
}

/// Parses a day directory name (`YYYYMMDD`, eight digits).
pub(crate) fn parse_day_dir(name: &str) -> Option<u32> {
    (name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// A path that failed the last check before touching the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing path component {0:?}: expected one plain file or directory name")]
pub struct UnsafePath(pub String);

/// Checks that `part` is exactly one normal path component (not empty, `.`, `..`, a root or
/// anything with a separator).
fn one_component(part: &str) -> Result<&str, UnsafePath> {
    let mut it = Path::new(part).components();
    match (it.next(), it.next()) {
        (Some(Component::Normal(c)), None) if c == part => Ok(part),
        _ => Err(UnsafePath(part.to_string())),
    }
}

/// The directory for `camera`'s snapshots of the day of `taken_at_us`, relative to the data
/// directory. [`CameraId`] already excludes anything but `[A-Za-z0-9_-]`; the component check
/// is a second, independent guard so that a future change to `CameraId` cannot open a hole.
pub(crate) fn day_dir(camera: &CameraId, taken_at_us: u64) -> Result<PathBuf, UnsafePath> {
    let mut p = PathBuf::from(SNAPSHOTS_DIR);
    p.push(one_component(camera.as_str())?);
    p.push(format!("{:08}", day_number(taken_at_us)));
    Ok(p)
}

#[cfg(test)]
// Expected days are written YYYY_MM_DD, which reads better than clippy's thousands grouping.
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    #[test]
    fn day_numbers() {
        assert_eq!(day_number(0), 1970_01_01);
        assert_eq!(day_number(86_399 * SEC + 999_999), 1970_01_01);
        assert_eq!(day_number(86_400 * SEC), 1970_01_02);
        // 2000-02-29 (a leap day in a century divisible by 400).
        assert_eq!(day_number(951_782_400 * SEC), 2000_02_29);
        assert_eq!(day_number(951_868_800 * SEC), 2000_03_01);
        // 2023-11-14T22:13:20Z.
        assert_eq!(day_number(1_700_000_000 * SEC), 2023_11_14);
        // 2100 is not a leap year: Feb 28 → Mar 1.
        assert_eq!(day_number(4_107_456_000 * SEC), 2100_02_28);
        assert_eq!(day_number(4_107_542_400 * SEC), 2100_03_01);
        assert_eq!(day_number(MAX_TAKEN_AT_US), 9999_12_31);
    }

    #[test]
    fn civil_round_trip_every_day_for_1000_years() {
        // Each day must follow the previous one by exactly one calendar day.
        let (mut py, mut pm, mut pd) = civil_from_days(-1);
        assert_eq!((py, pm, pd), (1969, 12, 31));
        for days in 0..366_000 {
            let (y, m, d) = civil_from_days(days);
            let next_ok = (y == py && m == pm && d == pd + 1)
                || (y == py && m == pm + 1 && d == 1)
                || (y == py + 1 && m == 1 && d == 1 && pm == 12);
            assert!(next_ok, "{py}-{pm}-{pd} -> {y}-{m}-{d}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!(d >= 1 && d <= len[(m - 1) as usize]);
            (py, pm, pd) = (y, m, d);
        }
    }

    #[test]
    fn file_names_round_trip_and_are_strict() {
        assert_eq!(
            file_name(42, 1_700_000_000_123_456),
            "42-1700000000123456.jpg"
        );
        assert_eq!(
            parse_file_name("42-1700000000123456.jpg"),
            Some((42, 1_700_000_000_123_456))
        );
        assert_eq!(parse_file_name("1-0.jpg"), Some((1, 0)));
        for bad in [
            "0-5.jpg",
            "042-5.jpg",
            "42-05.jpg",
            "-5.jpg",
            "42-.jpg",
            "42-5.jpeg",
            "42-5.jpg.tmp",
            "+42-5.jpg",
            "42-5-6.jpg",
            "42_5.jpg",
            "99999999999999999999-5.jpg",
            "1-253402300800000000.jpg",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert!(is_temp_name(&temp_name(42, 7)));
        assert_eq!(parse_file_name(&temp_name(42, 7)), None);
        assert!(!is_temp_name(&file_name(42, 7)));
    }

    #[test]
    fn day_dirs() {
        assert_eq!(parse_day_dir("20240229"), Some(2024_02_29));
        for bad in ["2024022", "202402290", "2024-02-2", "abcdefgh", ""] {
            assert_eq!(parse_day_dir(bad), None, "{bad}");
        }
        let cam = CameraId::new("cam-1").unwrap();
        assert_eq!(
            day_dir(&cam, 1_700_000_000 * SEC).unwrap(),
            Path::new("snapshots/cam-1/20231114")
        );
    }

    #[test]
    fn component_guard() {
        assert!(one_component("cam-1").is_ok());
        for bad in ["", ".", "..", "a/b", "/abs", "a/", "../x"] {
            assert!(one_component(bad).is_err(), "{bad:?}");
        }
    }
}
