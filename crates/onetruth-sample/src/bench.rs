//! Benchmark input: any number of CRM-like JSON lines, generated in constant memory.
//!
//! Record `n` is a pure function of `(seed, n)`. About a third of the records belong to a person
//! an earlier record introduced and share that person's email or phone (in another format),
//! so resolution has merges to make; the rest are distinct people.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use crate::rng::mix;
use crate::words::{CITIES, COMPANIES, FAMILY, GIVEN, slug};

/// The default seed of `onetruth-sample bench`.
pub const BENCH_SEED: u64 = 42;

#[derive(Serialize)]
struct BenchRecord<'a> {
    id: String,
    updated_at: i64,
    email: String,
    phone: String,
    first_name: &'a str,
    last_name: &'a str,
    company: &'a str,
    city: &'a str,
    postcode: &'a str,
}

fn h(seed: u64, n: u64, salt: u64) -> u64 {
    mix(seed ^ mix(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt))
}

/// The person record `n` is about: itself, or (for about a third of the records) the person of
/// an earlier record. Also whether a repeat shares the email (true) or the phone.
fn person(seed: u64, mut n: u64) -> (u64, bool) {
    let mut shares_email = false;
    let mut first = true;
    while n > 0 {
        let x = h(seed, n, 1);
        // A repeat with probability 1/3.
        if x >= u64::MAX / 3 {
            break;
        }
        if first {
            shares_email = x & 8 == 0;
            first = false;
        }
        n = mix(x) % n;
    }
    (n, shares_email)
}

const AREAS: [&str; 16] = [
    "415", "212", "617", "312", "206", "303", "512", "503", "646", "718", "773", "628", "720",
    "737", "971", "857",
];
/// Distinct phone slots: 16 area codes × 800 exchanges × 10,000 lines.
const PHONE_SLOTS: u64 = 16 * 800 * 10_000;

/// A distinct, valid US number for each slot below [`PHONE_SLOTS`], spread out by a bijective
/// multiply so neighbouring records do not get neighbouring numbers.
fn phone_digits(slot: u64) -> String {
    // The multiplier is odd and not a multiple of 5, so it is coprime with 2^13 · 5^6.
    let k = (u128::from(slot % PHONE_SLOTS) * 48_271_731 % u128::from(PHONE_SLOTS)) as u64;
    let area = AREAS[(k % 16) as usize];
    let rest = k / 16;
    let line = rest % 10_000;
    let exchange = 200 + rest / 10_000;
    format!("{area}{exchange}{line:04}")
}

fn phone_text(digits: &str, style: u64) -> String {
    let (a, e, l) = (&digits[..3], &digits[3..6], &digits[6..]);
    match style % 5 {
        0 => format!("({a}) {e}-{l}"),
        1 => format!("{a}.{e}.{l}"),
        2 => format!("+1 {a} {e} {l}"),
        3 => format!("1-{a}-{e}-{l}"),
        _ => format!("{a}-{e}-{l}"),
    }
}

/// The person's main email (`suffix` = the person), or a second one a repeat record brings
/// (`suffix` = that record), unique by its suffix.
fn email_text(first: &str, last: &str, suffix: u64, alt: bool) -> String {
    let (g, f) = (slug(first), slug(last));
    if alt {
        format!("{}{f}.{suffix}@example.org", &g[..1])
    } else {
        format!("{g}.{f}.{suffix}@example.com")
    }
}

/// Write `records` JSON lines for `seed`.
pub fn write_bench<W: Write>(out: W, records: u64, seed: u64) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    for n in 0..records {
        let (p, shares_email) = person(seed, n);
        let repeat = p != n;
        let x = h(seed, p, 2);
        let noise = h(seed, n, 3);
        let first_name = GIVEN[(x % GIVEN.len() as u64) as usize].0;
        let last_name = FAMILY[(x / 64 % FAMILY.len() as u64) as usize];
        // A repeat keeps one of the person's identifiers and brings a new one of the other kind.
        let new_email = repeat && !shares_email;
        let mut email = email_text(
            first_name,
            last_name,
            if new_email { n } else { p },
            new_email,
        );
        if noise & 7 == 0 {
            email = email.to_ascii_uppercase();
        }
        let phone_slot = if repeat && shares_email {
            2 * n + 1
        } else {
            2 * p
        };
        let phone = phone_text(&phone_digits(phone_slot), noise >> 8);
        let (city, _, postcodes) = CITIES[(x >> 20) as usize % CITIES.len()];
        let record = BenchRecord {
            id: format!("crm-{n:08}"),
            updated_at: 1_700_000_000 + n as i64 * 3 + (noise >> 40) as i64 % 3,
            email,
            phone,
            first_name,
            last_name,
            company: COMPANIES[(x >> 30) as usize % COMPANIES.len()].0,
            city,
            postcode: postcodes[(x >> 40) as usize % postcodes.len()],
        };
        serde_json::to_writer(&mut w, &record)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
