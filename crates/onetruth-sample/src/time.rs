//! Calendar arithmetic and the few timestamp formats the exports use, without a date library,
//! so the generated text can never change with a dependency update.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds at midnight UTC of a date.
pub fn unix(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * 86_400
}

fn parts(secs: i64) -> ((i64, u32, u32), (i64, i64, i64)) {
    let day = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    (civil_from_days(day), (s / 3600, s / 60 % 60, s % 60))
}

/// `2025-03-14T09:26:53Z`
pub fn rfc3339_utc(secs: i64) -> String {
    let ((y, mo, d), (h, mi, s)) = parts(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2025-03-14T02:26:53-07:00`: the same instant written in a local offset (minutes east of UTC).
pub fn rfc3339_offset(secs: i64, offset_minutes: i64) -> String {
    let ((y, mo, d), (h, mi, s)) = parts(secs + offset_minutes * 60);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
        off / 60,
        off % 60
    )
}

/// `2025-03-14 09:26:53` (UTC, as Salesforce exports write it).
pub fn sql_datetime(secs: i64) -> String {
    let ((y, mo, d), (h, mi, s)) = parts(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_instants() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-800_000, -1, 0, 59, 60, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_offset(1_700_000_000, -420),
            "2023-11-14T15:13:20-07:00"
        );
        assert_eq!(
            rfc3339_offset(1_700_000_000, 60),
            "2023-11-14T23:13:20+01:00"
        );
        assert_eq!(
            sql_datetime(unix(2024, 2, 29) + 3661),
            "2024-02-29 01:01:01"
        );
    }
}
