//! Postal addresses. Street lines are normalized token by token (transliteration, case,
//! punctuation, USPS-style abbreviations for street types, directions and unit designators) so
//! that "123 Main Street, Apt. 4" and "123 main st #4" are the same line; the house number and
//! postal code are pulled out so that an address written two different ways still agrees on
//! what identifies it.

use onetruth_model::Address;

use super::{Period, best_pair, fold_text, levels};

levels! {
    /// How two addresses compare.
    pub enum AddressLevel for "address" {
        /// The same street line (line1 and line2 together, normalized) in the same place: same
        /// postal code, or the same city when a postal code is missing on one side.
        Exact = "exact",
        /// Same house number and same postal code, street lines written differently (or a unit
        /// on one side only).
        SameHouseNumberPostalCode = "same_house_number_postal_code",
        /// Same postal code only.
        SamePostalCode = "same_postal_code",
        /// Same city only.
        SameCity = "same_city",
        /// Comparable parts that do not agree, or different countries.
        Disagree = "disagree",
        /// No part present on both sides to compare (including an equal street line with no
        /// postal code or city on either side: the same "1 Main St" exists in every town).
        Missing = "missing",
    }
}

/// Word → canonical abbreviation. Unit designators all become `unit`, because "Apt 4", "Suite 4",
/// "Unit 4" and "#4" name the same door in practice.
const STREET_WORDS: &[(&str, &str)] = &[
    ("street", "st"),
    ("saint", "st"),
    ("avenue", "ave"),
    ("av", "ave"),
    ("road", "rd"),
    ("boulevard", "blvd"),
    ("boul", "blvd"),
    ("drive", "dr"),
    ("drv", "dr"),
    ("lane", "ln"),
    ("court", "ct"),
    ("place", "pl"),
    ("terrace", "ter"),
    ("circle", "cir"),
    ("highway", "hwy"),
    ("parkway", "pkwy"),
    ("square", "sq"),
    ("trail", "trl"),
    ("alley", "aly"),
    ("crescent", "cres"),
    ("expressway", "expy"),
    ("freeway", "fwy"),
    ("heights", "hts"),
    ("point", "pt"),
    ("route", "rte"),
    ("mount", "mt"),
    ("center", "ctr"),
    ("centre", "ctr"),
    ("plaza", "plz"),
    ("north", "n"),
    ("south", "s"),
    ("east", "e"),
    ("west", "w"),
    ("northeast", "ne"),
    ("northwest", "nw"),
    ("southeast", "se"),
    ("southwest", "sw"),
    ("apartment", "unit"),
    ("apt", "unit"),
    ("suite", "unit"),
    ("ste", "unit"),
    ("flat", "unit"),
    ("room", "unit"),
    ("rm", "unit"),
    ("#", "unit"),
    ("floor", "fl"),
    ("building", "bldg"),
    ("bld", "bldg"),
    ("first", "1st"),
    ("second", "2nd"),
    ("third", "3rd"),
    ("fourth", "4th"),
    ("fifth", "5th"),
    ("sixth", "6th"),
    ("seventh", "7th"),
    ("eighth", "8th"),
    ("ninth", "9th"),
    ("tenth", "10th"),
];

/// Normalize a street line: ASCII, lowercase, periods and apostrophes dropped, other punctuation
/// as spaces, `#` split off as a unit designator, street words abbreviated ("Street" → "st",
/// "Avenue" → "ave", "North" → "n", "Apartment"/"Suite"/"#" → "unit"), German "-straße" →
/// "-str", "P.O. Box" → "po box". "123 Main Street, Apt. #4" → "123 main st unit 4".
pub fn normalize_street(line: &str) -> String {
    let folded = fold_text(line, &['#'], Period::Joins).replace('#', " # ");
    let mut out: Vec<String> = Vec::new();
    for token in folded.split_whitespace() {
        let word = match STREET_WORDS.iter().find(|(long, _)| *long == token) {
            Some((_, short)) => (*short).to_string(),
            None => match token.strip_suffix("strasse") {
                // "Hauptstraße" → "hauptstr", "Straße" → "str": the German abbreviation.
                Some(stem) => format!("{stem}str"),
                None => token.to_string(),
            },
        };
        // "Apt #4" is one designator, not two.
        if word == "unit" && out.last().is_some_and(|w| w == "unit") {
            continue;
        }
        out.push(word);
    }
    // Both spellings of a post office box end in the word "box"; most lines have none.
    if !out.iter().any(|w| w == "box") {
        return out.join(" ");
    }
    // Padded so that only whole words are replaced.
    let mut line = format!(" {} ", out.join(" "));
    for (long, short) in [(" post office box ", " po box "), (" p o box ", " po box ")] {
        line = line.replace(long, short);
    }
    line.trim().to_string()
}

/// A house number: digits, optionally followed by one letter ("12", "12a").
fn is_house_number(token: &str) -> bool {
    let digits = token.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && (digits == token.len()
            || digits + 1 == token.len() && token.as_bytes()[digits].is_ascii_lowercase())
}

/// The house number of a normalized street line: the first number that does not follow a unit,
/// floor or building designator, so "unit 4 123 main st" → "123" and "hauptstr 5" → "5".
fn house_number_of(street: &str) -> Option<String> {
    let mut previous = "";
    for token in street.split(' ') {
        if is_house_number(token) && !matches!(previous, "unit" | "fl" | "bldg") {
            return Some(token.to_string());
        }
        previous = token;
    }
    None
}

/// The house number of a street line, after [`normalize_street`]: "123 Main St Apt 4" → "123".
pub fn house_number(line: &str) -> Option<String> {
    house_number_of(&normalize_street(line))
}

/// A blocking and comparison key for an address's postal code: uppercase, letters and digits
/// only ("sw1a 1aa" → "SW1A1AA", "00-950" → "00950"); a US ZIP+4 ("94105-1234") keeps its five
/// digits so it meets the plain ZIP. `None` when there is no postal code.
pub fn postal_key(address: &Address) -> Option<String> {
    let raw = address.postal_code.as_deref()?.trim();
    let key: String = raw
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let zip_plus_4 = key.len() == 9
        && key.bytes().all(|b| b.is_ascii_digit())
        && (raw.as_bytes().get(5) == Some(&b'-')
            || country_code(address.country.as_deref()).as_deref() == Some("us"));
    match key {
        _ if zip_plus_4 => Some(key[..5].to_string()),
        k if k.is_empty() => None,
        k => Some(k),
    }
}

/// A country as a two-letter code when it is one or a few common spellings of one; `None` when
/// it cannot be told (then countries are not compared).
fn country_code(country: Option<&str>) -> Option<String> {
    let folded = fold_text(country?, &[], Period::Joins).replace(' ', "");
    let code = match folded.as_str() {
        "usa" | "unitedstates" | "unitedstatesofamerica" => "us",
        "uk" | "unitedkingdom" | "greatbritain" => "gb",
        "deutschland" | "germany" => "de",
        "france" => "fr",
        "canada" => "ca",
        "espana" | "spain" => "es",
        "italia" | "italy" => "it",
        "nederland" | "netherlands" => "nl",
        "australia" => "au",
        s if s.len() == 2 => s,
        _ => return None,
    };
    Some(code.to_string())
}

/// A city for comparison: folded, with "Saint"/"Mount"/"Fort" abbreviated.
fn city_key(city: Option<&str>) -> Option<String> {
    let folded = fold_text(city?, &[], Period::Joins);
    let words: Vec<&str> = folded
        .split_whitespace()
        .map(|w| match w {
            "saint" => "st",
            "sainte" => "ste",
            "mount" => "mt",
            "fort" => "ft",
            w => w,
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// An address parsed once for many comparisons ([`compare_prepared_address`]).
///
/// Its parts share one string: a million records each hold one or two addresses, and five
/// separate strings were five allocations (and five pointers to chase when comparing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedAddress {
    /// The present parts, one after another, in [`Part`] order.
    text: Box<str>,
    /// Where each part ends in `text` (a missing part ends where the previous one does).
    ends: [u32; PARTS],
    /// Bit `i` is set when part `i` is present.
    present: u8,
}

const PARTS: usize = 5;

/// The parts of a [`PreparedAddress`], in the order they are stored.
#[derive(Clone, Copy)]
enum Part {
    /// Normalized street line(s).
    Street,
    /// House number, from the street.
    House,
    /// Postal code key ([`postal_key`]).
    Postal,
    /// City key.
    City,
    /// ISO country code.
    Country,
}

impl PreparedAddress {
    pub fn new(a: &Address) -> PreparedAddress {
        let street = match (a.line1.as_deref(), a.line2.as_deref()) {
            (None, None) => None,
            (Some(l), None) | (None, Some(l)) => Some(normalize_street(l)),
            (Some(l1), Some(l2)) => Some(normalize_street(&super::concat(&[l1, " ", l2]))),
        }
        .filter(|s| !s.is_empty());
        let house = street.as_deref().and_then(house_number_of);
        let postal = postal_key(a);
        let city = city_key(a.city.as_deref());
        let country = country_code(a.country.as_deref());
        let parts: [Option<&str>; PARTS] = [
            street.as_deref(),
            house.as_deref(),
            postal.as_deref(),
            city.as_deref(),
            country.as_deref(),
        ];
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut ends = [0u32; PARTS];
        let mut present = 0u8;
        for (i, part) in parts.iter().enumerate() {
            if let Some(p) = part {
                text.push_str(p);
                present |= 1 << i;
            }
            // Addresses are short; one longer than 4 GiB could not have been read.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        PreparedAddress {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn part(&self, part: Part) -> Option<&str> {
        let i = part as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize)
    }
}

/// `Some(equal)` when both sides have the part, `None` otherwise.
fn both(a: &PreparedAddress, b: &PreparedAddress, part: Part) -> Option<bool> {
    Some(a.part(part)? == b.part(part)?)
}

/// Compare two addresses.
pub fn compare_address(a: &Address, b: &Address) -> AddressLevel {
    compare_prepared_address(&PreparedAddress::new(a), &PreparedAddress::new(b))
}

/// [`compare_address`] on prepared addresses.
pub fn compare_prepared_address(a: &PreparedAddress, b: &PreparedAddress) -> AddressLevel {
    use AddressLevel::*;
    let street = both(a, b, Part::Street);
    let postal = both(a, b, Part::Postal);
    let city = both(a, b, Part::City);
    if street.is_none() && postal.is_none() && city.is_none() {
        return Missing;
    }
    // Postal codes repeat across countries (10115 is Berlin and New York).
    if both(a, b, Part::Country) == Some(false) {
        return Disagree;
    }
    // The postal code places an address when both have one; the city otherwise.
    let place = postal.or(city);
    if street == Some(true) && place == Some(true) {
        return Exact;
    }
    if postal == Some(true) {
        return if both(a, b, Part::House) == Some(true) {
            SameHouseNumberPostalCode
        } else {
            SamePostalCode
        };
    }
    if city == Some(true) {
        return SameCity;
    }
    if street == Some(true) && place.is_none() {
        return Missing;
    }
    Disagree
}

/// The best level over every pair of the two records' addresses; `Missing` when either has none.
/// Someone's old and new addresses are both on file, so one agreeing pair is the evidence.
pub fn compare_addresses(a: &[Address], b: &[Address]) -> AddressLevel {
    best_pair(a, b, AddressLevel::Missing, compare_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn street_normalization() {
        for (raw, want) in [
            ("123 Main Street", "123 main st"),
            ("123 main st.", "123 main st"),
            ("123 Main Street, Apt. #4", "123 main st unit 4"),
            ("123 Main St Suite 200", "123 main st unit 200"),
            ("42 North Avenue", "42 n ave"),
            ("Hauptstraße 5", "hauptstr 5"),
            ("P.O. Box 12", "po box 12"),
            ("Post Office Box 12", "po box 12"),
            ("1 First Blvd.", "1 1st blvd"),
            ("  ", ""),
        ] {
            assert_eq!(normalize_street(raw), want, "{raw}");
        }
    }

    #[test]
    fn prepared_parts_read_back_and_missing_parts_stay_missing() {
        let a = PreparedAddress::new(&Address {
            line1: Some("12 Oak Street".into()),
            city: Some("Springfield".into()),
            country: Some("US".into()),
            ..Address::default()
        });
        assert_eq!(a.part(Part::Street), Some("12 oak st"));
        assert_eq!(a.part(Part::House), Some("12"));
        assert_eq!(a.part(Part::Postal), None);
        assert_eq!(a.part(Part::City), Some("springfield"));
        assert_eq!(a.part(Part::Country), Some("us"));
        let empty = PreparedAddress::new(&Address::default());
        for part in [
            Part::Street,
            Part::House,
            Part::Postal,
            Part::City,
            Part::Country,
        ] {
            assert_eq!(empty.part(part), None);
        }
    }

    #[test]
    fn house_numbers() {
        assert_eq!(house_number("123 Main St Apt 4").as_deref(), Some("123"));
        assert_eq!(house_number("Apt 4, 123 Main St").as_deref(), Some("123"));
        assert_eq!(house_number("Hauptstraße 5a").as_deref(), Some("5a"));
        assert_eq!(house_number("1st Avenue"), None);
        assert_eq!(house_number("Main St"), None);
    }

    #[test]
    fn postal_keys() {
        let key = |code: &str, country: Option<&str>| {
            postal_key(&Address {
                postal_code: Some(code.into()),
                country: country.map(Into::into),
                ..Address::default()
            })
        };
        assert_eq!(key("sw1a 1aa", None).as_deref(), Some("SW1A1AA"));
        assert_eq!(key("94105-1234", None).as_deref(), Some("94105"));
        assert_eq!(key("941051234", Some("USA")).as_deref(), Some("94105"));
        assert_eq!(key("941051234", None).as_deref(), Some("941051234"));
        assert_eq!(key("00-950", Some("PL")).as_deref(), Some("00950"));
        assert_eq!(key(" - ", None), None);
        assert_eq!(postal_key(&Address::default()), None);
    }
}
