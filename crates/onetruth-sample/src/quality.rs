//! The quality benchmark: multi-source customer data with ground truth, and a pairwise scorer.
//!
//! [`quality_files`] builds a world of people and renders each of them into one to four source
//! systems — a Salesforce-like CRM (`crm.csv`), Stripe-like billing (`billing.jsonl`), Zendesk-like
//! helpdesk users (`helpdesk.csv`) and phone-system contacts (`phone.csv`) — with the noise real
//! exports have, plus `truth.csv` naming the person behind every record and the manifests that
//! load the four files. Every noise and trap class has a documented rate ([`NOISE_RATES`],
//! [`TRAP_RATES`]); the generator counts how often it applied each one ([`QualitySummary`]).
//!
//! [`score`] compares the source-to-customer links a resolver produced (`onetruth export links`)
//! with the truth: pairwise precision, recall and F1 from a contingency table of (predicted
//! cluster, true person) — never enumerating pairs — and, per trap class, how often the people
//! of one trap group ended up in one customer.
//!
//! Like the demo, everything comes from one seed through SplitMix64 streams, so the same seed and
//! size always give the same bytes.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::demo::csv_line;
use crate::rng::Rng;
use crate::time::{civil_from_days, days_from_civil, rfc3339_utc, sql_datetime, unix};
use crate::words::{
    COMPANY_KINDS, COMPANY_STEMS, MAIL_PROVIDERS, NAME_VARIANTS, PLANS, Q_CITIES, Q_FAMILY,
    Q_GIVEN, Q_STREETS, STREET_SUFFIXES, ascii_fold,
};

/// The default seed of `onetruth-sample quality generate`.
pub const QUALITY_SEED: u64 = 0x7175_616c_6974_7931; // "quality1"

/// The manifests that load the generated files, written next to them.
pub const QUALITY_MANIFESTS: [(&str, &str); 4] = [
    ("crm.toml", include_str!("../quality/crm.toml")),
    ("billing.toml", include_str!("../quality/billing.toml")),
    ("helpdesk.toml", include_str!("../quality/helpdesk.toml")),
    ("phone.toml", include_str!("../quality/phone.toml")),
];

/// The data files, in the order they should be ingested, with the manifest for each.
pub const QUALITY_DATA_FILES: [(&str, &str); 4] = [
    ("crm.csv", "crm.toml"),
    ("billing.jsonl", "billing.toml"),
    ("helpdesk.csv", "helpdesk.toml"),
    ("phone.csv", "phone.toml"),
];

/// A documented rate of one noise or trap class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Short name, as printed by `quality generate` (and, for traps, written in `truth.csv`).
    pub name: &'static str,
    /// How often, in thousandths of `per`.
    pub permille: u32,
    /// What the rate is a share of.
    pub per: &'static str,
    /// What the class looks like in the data.
    pub what: &'static str,
}

/// The classes of people that a resolver gets wrong in a typical way. The first four are
/// over-merge traps (different people share something an exact matcher links on, or something a
/// careless fuzzy matcher links on); [`TrapClass::NoSharedId`] is the under-merge class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapClass {
    /// Two or three people of one household sharing a family mailbox or a landline.
    Household,
    /// Employees of one company who list its main line as their phone.
    Switchboard,
    /// Different people who typed the same placeholder (`test@test.com`, `0000000000`...).
    Placeholder,
    /// Different people with the same full name.
    SameName,
    /// One person in two systems with no identifier in common: only name, birth date and
    /// address agree.
    NoSharedId,
}

impl TrapClass {
    /// Every class, in report order.
    pub const ALL: [TrapClass; 5] = [
        TrapClass::Household,
        TrapClass::Switchboard,
        TrapClass::Placeholder,
        TrapClass::SameName,
        TrapClass::NoSharedId,
    ];

    /// The name written in `truth.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapClass::Household => "household",
            TrapClass::Switchboard => "switchboard",
            TrapClass::Placeholder => "placeholder",
            TrapClass::SameName => "same_name",
            TrapClass::NoSharedId => "no_shared_id",
        }
    }

    /// The class named `s` in `truth.csv`.
    pub fn parse(s: &str) -> Option<TrapClass> {
        TrapClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the class tests over-merging (all but [`TrapClass::NoSharedId`]).
    pub fn is_over_merge(self) -> bool {
        self != TrapClass::NoSharedId
    }

    fn permille(self) -> u32 {
        TRAP_RATES[self as usize].permille
    }
}

/// Share of people in each trap class (the classes are disjoint). Exact: the generator takes
/// `people × permille / 1000` people for each class (households and groups may come out one
/// person short when the last group would be a single person).
pub const TRAP_RATES: &[Rate] = &[
    Rate {
        name: "household",
        permille: 40,
        per: "people",
        what: "households of 2 (90%) or 3 people at one address, mostly one family name, \
               different given names and birth dates, sharing a family mailbox (half the \
               households) or a landline (the other half) in at least one record each",
    },
    Rate {
        name: "switchboard",
        permille: 20,
        per: "people",
        what: "3 to 10 employees of one company listing its main line as their phone (in at \
               least one CRM or phone-system record each); own names, work emails, addresses",
    },
    Rate {
        name: "placeholder",
        permille: 15,
        per: "people",
        what: "one record with a placeholder email or phone (test@test.com, n/a, 0000000000, \
               asdf@asdf.com, 212-555-1212...): see PLACEHOLDERS; the group is the value",
    },
    Rate {
        name: "same_name",
        permille: 20,
        per: "people",
        what: "groups of 2 (85%) or 3 different people with the same given and family name \
               (drawn with the usual skew, so common names), nothing else in common",
    },
    Rate {
        name: "no_shared_id",
        permille: 30,
        per: "people",
        what: "exactly one CRM and one billing record, different emails, phone only in the \
               CRM, no crm_id in billing; name, birth date (present in both) and address agree",
    },
];

/// Placeholder values people type when a form insists: (is a phone, text, weight). Some are on
/// onetruth's default blocklist, some do not normalize (never link), and `asdf@asdf.com`,
/// `no@email.com` and `212-555-1212` are valid values no list catches.
pub const PLACEHOLDERS: &[(bool, &str, u32)] = &[
    (false, "test@test.com", 20),
    (false, "n/a", 10),
    (false, "none@none.com", 8),
    (false, "noemail@gmail.com", 10),
    (false, "asdf@asdf.com", 6),
    (false, "no@email.com", 5),
    (true, "0000000000", 15),
    (true, "(999) 999-9999", 8),
    (true, "123-456-7890", 8),
    (true, "555-555-5555", 6),
    (true, "212-555-1212", 5),
];

/// Noise classes, in the order of [`NOISE_RATES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noise {
    Typo,
    Nickname,
    Swap,
    Translit,
    NameCase,
    Whitespace,
    EmailCase,
    GmailVariant,
    PhoneFormat,
    DobTypo,
    AddressLong,
    AddressUpper,
    Moved,
    ChangedEmail,
    Duplicate,
    CrmEmailMissing,
    CrmPhoneMissing,
    CrmBirthMissing,
    CrmAddressMissing,
    BillingEmailMissing,
    BillingPhoneMissing,
    BillingBirthMissing,
    BillingAddressMissing,
    BillingCrmIdMissing,
    HelpdeskEmailMissing,
    HelpdeskPhoneMissing,
    HelpdeskFamilyMissing,
    HelpdeskCrmIdMissing,
    PhoneFamilyMissing,
    PhoneEmailMissing,
    PhoneCompanyMissing,
}

const NOISE_COUNT: usize = Noise::PhoneCompanyMissing as usize + 1;

/// Noise rates. Each is drawn independently per record (or per person, or per value, as `per`
/// says); "missing" rates are the share of records of that source without the field. Records
/// whose field a trap or the under-merge class needs are exempt (and not counted); fields that
/// [`BRIDGING`] fills afterwards make the written share of a "missing" class slightly lower
/// than its drawn rate ([`QualitySummary::noise`] counts what was written).
pub const NOISE_RATES: &[Rate] = &[
    Rate {
        name: "typo",
        permille: 30,
        per: "records",
        what: "one edit (substitution, deletion, doubled letter, transposition) in the given \
               or the family name",
    },
    Rate {
        name: "nickname",
        permille: 150,
        per: "records of people whose given name has a short form",
        what: "William → Bill, Elizabeth → Liz, Oluwaseun → Seun...",
    },
    Rate {
        name: "swap",
        permille: 20,
        per: "records",
        what: "given and family name swapped",
    },
    Rate {
        name: "translit",
        permille: 500,
        per: "records of people with a non-ASCII or variant-spelled name",
        what: "José → Jose, Müller → Mueller or Muller, Mohammed → Muhammad, Choi → Choe",
    },
    Rate {
        name: "name_case",
        permille: 60,
        per: "records",
        what: "names all upper or all lower case",
    },
    Rate {
        name: "whitespace",
        permille: 40,
        per: "records",
        what: "stray spaces around names and emails, doubled inside one-field names",
    },
    Rate {
        name: "email_case",
        permille: 100,
        per: "emails written",
        what: "Jane.Doe@Example.com or JANE.DOE@EXAMPLE.COM",
    },
    Rate {
        name: "gmail_variant",
        permille: 60,
        per: "gmail.com addresses written",
        what: "dots dropped or added in the local part, or a +tag",
    },
    Rate {
        name: "phone_format",
        permille: 875,
        per: "phones written",
        what: "not E.164: one of (415) 555-0134, 415.555.0134, +1 415 555 0134, \
               1-415-555-0134, 415-555-0134, 4155550134, 415 555 0134, uniformly",
    },
    Rate {
        name: "dob_typo",
        permille: 15,
        per: "birth dates written",
        what: "day and month swapped (when both ≤ 12) or one digit of the day changed",
    },
    Rate {
        name: "address_long",
        permille: 300,
        per: "addresses written",
        what: "street suffix spelled out (Street, Avenue) instead of abbreviated",
    },
    Rate {
        name: "address_upper",
        permille: 50,
        per: "addresses written",
        what: "street line in upper case",
    },
    Rate {
        name: "moved",
        permille: 80,
        per: "people with 2+ records (not households or no_shared_id)",
        what: "every record after the person's first carries a new address",
    },
    Rate {
        name: "changed_email",
        permille: 60,
        per: "people with 2+ records (not households, switchboards or no_shared_id)",
        what: "new job: the first record has the old work email and company, later records \
               the new ones (the mobile number stays)",
    },
    Rate {
        name: "duplicate",
        permille: 50,
        per: "person-source appearances (not no_shared_id)",
        what: "a second record for the person in the same source, created later, often with \
               the person's other email (CRM, helpdesk) or other number (phone system)",
    },
    Rate {
        name: "crm.email missing",
        permille: 50,
        per: "CRM records",
        what: "Email empty",
    },
    Rate {
        name: "crm.phone missing",
        permille: 100,
        per: "CRM records",
        what: "Phone empty",
    },
    Rate {
        name: "crm.birth_date missing",
        permille: 300,
        per: "CRM records",
        what: "Birthdate empty",
    },
    Rate {
        name: "crm.address missing",
        permille: 80,
        per: "CRM records",
        what: "mailing address empty",
    },
    Rate {
        name: "billing.email missing",
        permille: 30,
        per: "billing records",
        what: "email null",
    },
    Rate {
        name: "billing.phone missing",
        permille: 350,
        per: "billing records",
        what: "phone null",
    },
    Rate {
        name: "billing.birth_date missing",
        permille: 750,
        per: "billing records",
        what: "no metadata.birth_date (billing carries one for a quarter of customers)",
    },
    Rate {
        name: "billing.address missing",
        permille: 120,
        per: "billing records",
        what: "address null",
    },
    Rate {
        name: "billing.crm_id missing",
        permille: 600,
        per: "billing records of people in the CRM",
        what: "no metadata.crm_id (so 40% of them link to the CRM through its id)",
    },
    Rate {
        name: "helpdesk.email missing",
        permille: 20,
        per: "helpdesk records",
        what: "email empty",
    },
    Rate {
        name: "helpdesk.phone missing",
        permille: 750,
        per: "helpdesk records",
        what: "phone empty",
    },
    Rate {
        name: "helpdesk.family_name missing",
        permille: 50,
        per: "helpdesk records",
        what: "name is the given name only",
    },
    Rate {
        name: "helpdesk.crm_id missing",
        permille: 850,
        per: "helpdesk records of people in the CRM",
        what: "no external_id (the CRM integration fills it for 15%)",
    },
    Rate {
        name: "phone.family_name missing",
        permille: 50,
        per: "phone-system records",
        what: "last_name empty",
    },
    Rate {
        name: "phone.email missing",
        permille: 900,
        per: "phone-system records",
        what: "email empty (contacts are mostly name and number)",
    },
    Rate {
        name: "phone.company missing",
        permille: 600,
        per: "phone-system records of people with a job",
        what: "company empty",
    },
];

/// What the generator guarantees besides the rates: every person's records are connected by
/// something other than the name — a shared email, phone or CRM id, or a birth date or address
/// on both — except in the `no_shared_id` class (name, birth date and address by design). After
/// the per-record draws, a record (or group of records) agreeing with the rest of its person
/// on the name alone gets an email or phone another record of that person has (preferably a
/// phone contact's number or a helpdesk user's email is replaced, or an empty CRM or billing
/// field filled; filled fields make the written "missing" shares come out a little under the
/// drawn rates, as the summary shows). Without this, about a tenth
/// of the true pairs would agree on nothing but the name — a helpdesk user with another email
/// and no phone, a phone contact whose number no other system has — and no matcher could link
/// them safely, so the F1 target would be out of reach for reasons no resolver controls.
pub const BRIDGING: &str = "every person's records share an email, phone, CRM id, birth date \
or address, except the no_shared_id class (name + birth date + address only)";

/// How many records carry each noise class, against how many could have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoiseCount {
    /// The class, as in [`NOISE_RATES`].
    pub name: &'static str,
    /// The configured rate.
    pub permille: u32,
    /// Records (or people, or values: see the rate's `per`) that got the noise.
    pub affected: u64,
    /// Records (or people, or values) that were drawn for it.
    pub eligible: u64,
}

/// Size of one trap class in the generated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrapCount {
    /// The class.
    pub class: TrapClass,
    /// The configured share of people, in thousandths.
    pub permille: u32,
    /// People in the class.
    pub people: u64,
    /// Groups (households, companies, placeholder values, name groups; one per person for
    /// `no_shared_id`).
    pub groups: u64,
    /// Records marked with the class in `truth.csv`.
    pub records: u64,
}

/// What [`quality_files`] generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QualitySummary {
    /// The seed.
    pub seed: u64,
    /// People in the world.
    pub people: u64,
    /// Records in all four data files.
    pub records: u64,
    /// Records per data file, in [`QUALITY_DATA_FILES`] order.
    pub records_per_file: Vec<(&'static str, u64)>,
    /// Trap classes.
    pub traps: Vec<TrapCount>,
    /// Noise classes, in [`NOISE_RATES`] order.
    pub noise: Vec<NoiseCount>,
    /// Fields set so that each person's records share something besides the name (see
    /// [`BRIDGING`]).
    pub bridged: u64,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityFile {
    /// File name inside the output directory.
    pub name: &'static str,
    /// Its contents.
    pub contents: String,
}

// ---------------------------------------------------------------------------------------------
// The world

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Src {
    Crm,
    Billing,
    Helpdesk,
    Phone,
}

impl Src {
    const ALL: [Src; 4] = [Src::Crm, Src::Billing, Src::Helpdesk, Src::Phone];

    fn name(self) -> &'static str {
        match self {
            Src::Crm => "crm",
            Src::Billing => "billing",
            Src::Helpdesk => "helpdesk",
            Src::Phone => "phone",
        }
    }

    /// Sources whose records (almost) always have the field, so a trap value can be put there.
    /// Phone-system contacts rarely carry an email and helpdesk users rarely a phone.
    fn carries(self, phone: bool) -> bool {
        if phone {
            self != Src::Helpdesk
        } else {
            self != Src::Phone
        }
    }
}

/// Relative chance of being in each source, in [`Src::ALL`] order.
const SOURCE_WEIGHTS: [u64; 4] = [75, 60, 50, 45];
/// Percent of people in 1, 2, 3 and 4 sources (mean 2.42 sources; with duplicates and forced
/// trap records about 2.5 records per person, so 40,000 people make about 100,000 records).
const SOURCE_COUNTS: [u64; 4] = [19, 35, 31, 15];

/// Time window of record versions: 2019-01-01 .. 2025-06-30.
fn window() -> (i64, i64) {
    (unix(2019, 1, 1), unix(2025, 6, 30))
}

#[derive(Debug, Clone)]
struct Job {
    company: usize,
    email: String,
}

#[derive(Debug, Clone)]
struct Addr {
    no: u32,
    street: usize,
    suffix: usize,
    /// Apartment or suite, e.g. `4B`.
    unit: Option<String>,
    city: usize,
    zip: usize,
}

#[derive(Debug, Clone)]
struct App {
    src: Src,
    at: i64,
    dup: bool,
    /// This record must carry the person's trap value.
    anchor: bool,
}

#[derive(Debug, Clone)]
struct Person {
    given: usize,
    family: &'static str,
    /// Days since 1970-01-01.
    birth: i64,
    email: String,
    /// `no_shared_id`: the address the billing record uses.
    alt_email: Option<String>,
    job: Option<Job>,
    new_job: Option<Job>,
    /// Ten digits.
    mobile: String,
    home: Option<String>,
    addr: Addr,
    new_addr: Option<Addr>,
    trap: Option<(TrapClass, usize)>,
    /// Household mailbox (`Some(false)`) or landline (`Some(true)`); switchboard main line.
    shared: Option<(bool, String)>,
    apps: Vec<App>,
    crm_id: Option<String>,
}

impl Person {
    fn nicks(&self) -> &'static [&'static str] {
        Q_GIVEN[self.given].1
    }

    fn given_name(&self) -> &'static str {
        Q_GIVEN[self.given].0
    }

    fn has_variant(&self) -> bool {
        let variant = |s: &str| !s.is_ascii() || NAME_VARIANTS.iter().any(|(n, _)| *n == s);
        variant(self.given_name()) || variant(self.family)
    }

    fn class(&self) -> Option<TrapClass> {
        self.trap.map(|t| t.0)
    }

    /// The trap value of this person: (is a phone, text as written), if any.
    fn trap_value(&self) -> Option<(bool, &str)> {
        match self.class()? {
            TrapClass::Placeholder => {
                let (phone, text, _) = PLACEHOLDERS[self.trap?.1];
                Some((phone, text))
            }
            TrapClass::Household | TrapClass::Switchboard => {
                self.shared.as_ref().map(|(p, v)| (*p, v.as_str()))
            }
            _ => None,
        }
    }
}

/// Index in `0..n`, skewed towards the front (density falls linearly): lists are ordered from
/// common to rare.
fn skewed(r: &mut Rng, n: usize) -> usize {
    let n = n as u64;
    r.below(n).min(r.below(n)) as usize
}

fn permille(r: &mut Rng, p: u32) -> bool {
    r.below(1000) < u64::from(p)
}

/// Lowercase ASCII letters and digits of a name, for email local parts.
fn slug(s: &str) -> String {
    ascii_fold(s, false)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn company_name(c: usize) -> String {
    let (stem, kind) = (
        COMPANY_STEMS[c / COMPANY_KINDS.len()],
        COMPANY_KINDS[c % COMPANY_KINDS.len()],
    );
    format!("{stem} {kind}")
}

fn company_domain(c: usize) -> String {
    let (stem, kind) = (
        COMPANY_STEMS[c / COMPANY_KINDS.len()],
        COMPANY_KINDS[c % COMPANY_KINDS.len()],
    );
    format!("{}{}.example", slug(stem), slug(kind))
}

const COMPANIES: usize = COMPANY_STEMS.len() * COMPANY_KINDS.len();

/// Numbers a person could own: a real area code, an exchange 200-999 that is not N11 or 555
/// (reserved or fictional), and not a value onetruth treats as a placeholder (a repeated digit
/// or a straight run in the last seven digits).
fn new_phone(r: &mut Rng, area: &str, used: &mut HashSet<String>) -> String {
    loop {
        let exchange = r.range(200, 999);
        if exchange % 100 == 11 || exchange == 555 {
            continue;
        }
        let line = r.below(10_000);
        let digits = format!("{area}{exchange}{line:04}");
        let tail = &digits[3..];
        let same = tail.bytes().all(|b| b == tail.as_bytes()[0]);
        if same || "0123456789".contains(tail) || "9876543210".contains(tail) {
            continue;
        }
        if used.insert(digits.clone()) {
            return digits;
        }
    }
}

/// Gmail ignores dots and `+tags`: reserve that key, so a rendered variant of one person's
/// address can never be another person's real address.
fn email_key(email: &str) -> String {
    match email.split_once('@') {
        Some((local, "gmail.com")) => {
            let local = local.split('+').next().unwrap_or(local).replace('.', "");
            format!("{local}@gmail.com")
        }
        _ => email.to_string(),
    }
}

fn unique_email(r: &mut Rng, local: &str, domain: &str, used: &mut HashSet<String>) -> String {
    let mut candidate = format!("{local}@{domain}");
    while !used.insert(email_key(&candidate)) {
        candidate = format!("{local}{}@{domain}", r.range(1, 999));
    }
    candidate
}

fn new_addr(r: &mut Rng, city: usize) -> Addr {
    let unit = r.chance(20).then(|| {
        let floor = r.range(1, 12);
        let door = char::from(b'A' + r.below(6) as u8);
        format!("{floor}{door}")
    });
    Addr {
        no: r.range(1, 9899) as u32,
        street: skewed(r, Q_STREETS.len()),
        suffix: r.below(STREET_SUFFIXES.len() as u64) as usize,
        unit,
        city,
        zip: r.below(Q_CITIES[city].3.len() as u64) as usize,
    }
}

fn area_code(r: &mut Rng, city: usize) -> &'static str {
    // Most people have a number from where they live; the rest moved and kept it.
    let city = if r.chance(80) {
        city
    } else {
        r.below(Q_CITIES.len() as u64) as usize
    };
    r.pick(Q_CITIES[city].2)
}

fn birth_days(r: &mut Rng) -> i64 {
    r.range(days_from_civil(1940, 1, 1), days_from_civil(2006, 12, 31))
}

struct World {
    people: Vec<Person>,
    /// Groups per trap class, in [`TrapClass::ALL`] order.
    groups: [usize; 5],
}

impl World {
    fn new(n: usize, seed: u64) -> World {
        let mut r = Rng::stream(seed, "quality/people");
        let mut people: Vec<Person> = (0..n)
            .map(|_| {
                let city = skewed(&mut r, Q_CITIES.len());
                Person {
                    given: skewed(&mut r, Q_GIVEN.len()),
                    family: Q_FAMILY[skewed(&mut r, Q_FAMILY.len())],
                    birth: birth_days(&mut r),
                    email: String::new(),
                    alt_email: None,
                    job: None,
                    new_job: None,
                    mobile: String::new(),
                    home: None,
                    addr: new_addr(&mut r, city),
                    new_addr: None,
                    trap: None,
                    shared: None,
                    apps: Vec::new(),
                    crm_id: None,
                }
            })
            .collect();

        // Trap classes: disjoint runs of a shuffled order. Names, birth dates and addresses of
        // group members are fixed here, before emails are made from the names.
        let mut t = Rng::stream(seed, "quality/traps");
        let mut order: Vec<usize> = (0..n).collect();
        t.shuffle(&mut order);
        let mut next = 0;
        let mut groups = [0usize; 5];
        let mut members_of: Vec<Vec<Vec<usize>>> = vec![Vec::new(); 5];
        for class in TrapClass::ALL {
            let want = (n as u64 * u64::from(class.permille()) + 500) / 1000;
            let mut remaining = want as usize;
            while remaining > 0 && next < n {
                let size = match class {
                    TrapClass::Household => 2 + usize::from(t.chance(10)),
                    TrapClass::Switchboard => t.range(3, 10) as usize,
                    TrapClass::SameName => 2 + usize::from(t.chance(15)),
                    TrapClass::Placeholder | TrapClass::NoSharedId => 1,
                };
                let size = size.min(remaining).min(n - next);
                let grouped = !matches!(class, TrapClass::Placeholder | TrapClass::NoSharedId);
                if grouped && size < 2 {
                    break;
                }
                let members = order[next..next + size].to_vec();
                next += size;
                remaining -= size;
                let group = match class {
                    TrapClass::Placeholder => {
                        let total: u32 = PLACEHOLDERS.iter().map(|p| p.2).sum();
                        let mut x = t.below(u64::from(total)) as u32;
                        PLACEHOLDERS
                            .iter()
                            .position(|p| {
                                let hit = x < p.2;
                                x = x.saturating_sub(p.2);
                                hit
                            })
                            .unwrap_or(0)
                    }
                    _ => groups[class as usize],
                };
                groups[class as usize] += 1;
                for &m in &members {
                    people[m].trap = Some((class, group));
                }
                members_of[class as usize].push(members);
            }
        }
        // Placeholder groups are the values, not the draws.
        groups[TrapClass::Placeholder as usize] = {
            let mut used: Vec<usize> = people
                .iter()
                .filter(|p| p.class() == Some(TrapClass::Placeholder))
                .map(|p| p.trap.map_or(0, |t| t.1))
                .collect();
            used.sort_unstable();
            used.dedup();
            used.len()
        };

        for members in &members_of[TrapClass::Household as usize] {
            let lead = members[0];
            let child = t.chance(20);
            for (k, &m) in members.iter().enumerate().skip(1) {
                let (family, addr, birth) = {
                    let l = &people[lead];
                    (l.family, l.addr.clone(), l.birth)
                };
                let taken: Vec<usize> = members[..k].iter().map(|&o| people[o].given).collect();
                let taken_births: Vec<i64> =
                    members[..k].iter().map(|&o| people[o].birth).collect();
                let p = &mut people[m];
                if t.chance(85) {
                    p.family = family;
                }
                p.addr = addr;
                while taken.contains(&p.given) {
                    p.given = skewed(&mut t, Q_GIVEN.len());
                }
                // A partner of about the same age, or a grown child (or parent, when the
                // first member is young), never born after 2006.
                let latest = days_from_civil(2006, 12, 31);
                p.birth = if child && k == members.len() - 1 {
                    let gap = t.range(20 * 365, 35 * 365);
                    if birth + gap <= latest {
                        birth + gap
                    } else {
                        birth - gap
                    }
                } else {
                    (birth + t.range(-6 * 365, 6 * 365)).min(latest)
                };
                while taken_births.contains(&p.birth) {
                    p.birth -= 1;
                }
            }
        }
        for members in &members_of[TrapClass::SameName as usize] {
            let (given, family) = (people[members[0]].given, people[members[0]].family);
            let mut births = vec![people[members[0]].birth];
            for &m in &members[1..] {
                let p = &mut people[m];
                p.given = given;
                p.family = family;
                while births.contains(&p.birth) {
                    p.birth = birth_days(&mut t);
                }
                births.push(p.birth);
            }
        }

        // Identifiers, unique across the world except where a trap shares one on purpose.
        let mut r = Rng::stream(seed, "quality/identifiers");
        let mut phones = HashSet::new();
        let mut emails = HashSet::new();
        for p in people.iter_mut() {
            let area = area_code(&mut r, p.addr.city);
            p.mobile = new_phone(&mut r, area, &mut phones);
            if r.chance(20) {
                let area = r.pick(Q_CITIES[p.addr.city].2);
                p.home = Some(new_phone(&mut r, area, &mut phones));
            }
            p.email = personal_email(&mut r, p, &mut emails);
            if p.class() == Some(TrapClass::NoSharedId) {
                p.alt_email = Some(personal_email(&mut r, p, &mut emails));
            }
            if r.chance(45) {
                let company = r.below(COMPANIES as u64) as usize;
                p.job = Some(new_job(&mut r, p, company, &mut emails));
            }
        }
        for members in &members_of[TrapClass::Household as usize] {
            let lead = &people[members[0]];
            let shared = if r.chance(50) {
                let f = slug(lead.family);
                let local = match r.below(4) {
                    0 => format!("the{f}s"),
                    1 => format!("{f}family"),
                    2 => format!(
                        "{}and{}",
                        slug(lead.given_name()),
                        slug(people[members[1]].given_name())
                    ),
                    _ => format!("{f}.home"),
                };
                let provider = MAIL_PROVIDERS[skewed(&mut r, MAIL_PROVIDERS.len())];
                (false, unique_email(&mut r, &local, provider, &mut emails))
            } else {
                let area = r.pick(Q_CITIES[lead.addr.city].2);
                (true, new_phone(&mut r, area, &mut phones))
            };
            for &m in members {
                if shared.0 {
                    people[m].home = Some(shared.1.clone());
                }
                people[m].shared = Some(shared.clone());
            }
        }
        let mut switchboard_companies = HashSet::new();
        for members in &members_of[TrapClass::Switchboard as usize] {
            let company = loop {
                let c = r.below(COMPANIES as u64) as usize;
                if switchboard_companies.insert(c) {
                    break c;
                }
            };
            let city = r.below(Q_CITIES.len() as u64) as usize;
            let area = r.pick(Q_CITIES[city].2);
            let line = new_phone(&mut r, area, &mut phones);
            for &m in members {
                let job = new_job(&mut r, &people[m], company, &mut emails);
                let p = &mut people[m];
                p.job = Some(job);
                p.shared = Some((true, line.clone()));
            }
        }

        let mut world = World { people, groups };
        world.assign_sources(seed);
        world.life_events(seed, &mut emails);
        world.crm_ids(seed);
        world
    }

    /// Which systems each person is in, when, and which record must carry the trap value.
    fn assign_sources(&mut self, seed: u64) {
        let mut r = Rng::stream(seed, "quality/sources");
        let (start, end) = window();
        for p in self.people.iter_mut() {
            let mut srcs: Vec<Src> = if p.class() == Some(TrapClass::NoSharedId) {
                vec![Src::Crm, Src::Billing]
            } else {
                let mut x = r.below(100);
                let k = SOURCE_COUNTS
                    .iter()
                    .position(|&c| {
                        let hit = x < c;
                        x = x.saturating_sub(c);
                        hit
                    })
                    .unwrap_or(0)
                    + 1;
                let mut pool: Vec<Src> = Src::ALL.to_vec();
                let mut chosen = Vec::new();
                for _ in 0..k {
                    let total: u64 = pool.iter().map(|s| SOURCE_WEIGHTS[*s as usize]).sum();
                    let mut x = r.below(total);
                    let i = pool
                        .iter()
                        .position(|s| {
                            let w = SOURCE_WEIGHTS[*s as usize];
                            let hit = x < w;
                            x = x.saturating_sub(w);
                            hit
                        })
                        .unwrap_or(0);
                    chosen.push(pool.remove(i));
                }
                chosen
            };
            // A trap value needs a record whose source has that field; the CRM has both.
            let need: Option<Box<dyn Fn(Src) -> bool>> = match p.class() {
                Some(TrapClass::Switchboard) => {
                    Some(Box::new(|s| matches!(s, Src::Crm | Src::Phone)))
                }
                Some(TrapClass::Household | TrapClass::Placeholder) => {
                    let phone = p.trap_value().is_some_and(|v| v.0);
                    Some(Box::new(move |s: Src| s.carries(phone)))
                }
                _ => None,
            };
            if need
                .as_ref()
                .is_some_and(|need| !srcs.iter().any(|&s| need(s)))
            {
                srcs.push(Src::Crm);
            }
            srcs.sort();
            let mut apps: Vec<App> = srcs
                .iter()
                .map(|&src| App {
                    src,
                    at: r.range(start, end),
                    dup: false,
                    anchor: false,
                })
                .collect();
            if let Some(need) = &need {
                let fits: Vec<usize> = (0..apps.len()).filter(|&i| need(apps[i].src)).collect();
                apps[fits[r.below(fits.len() as u64) as usize]].anchor = true;
            }
            if p.class() != Some(TrapClass::NoSharedId) {
                for i in 0..apps.len() {
                    if permille(&mut r, NOISE_RATES[Noise::Duplicate as usize].permille) {
                        let at = (apps[i].at + r.range(86_400, 400 * 86_400)).min(end);
                        apps.push(App {
                            src: apps[i].src,
                            at,
                            dup: true,
                            anchor: false,
                        });
                    }
                }
            }
            p.apps = apps;
        }
    }

    /// Moves and job changes, for people seen more than once.
    fn life_events(&mut self, seed: u64, emails: &mut HashSet<String>) {
        let mut r = Rng::stream(seed, "quality/life");
        for p in self.people.iter_mut() {
            if p.apps.len() < 2 {
                continue;
            }
            let class = p.class();
            if !matches!(class, Some(TrapClass::Household | TrapClass::NoSharedId))
                && permille(&mut r, NOISE_RATES[Noise::Moved as usize].permille)
            {
                let city = if r.chance(50) {
                    p.addr.city
                } else {
                    r.below(Q_CITIES.len() as u64) as usize
                };
                p.new_addr = Some(new_addr(&mut r, city));
            }
            if !matches!(
                class,
                Some(TrapClass::Household | TrapClass::Switchboard | TrapClass::NoSharedId)
            ) && permille(&mut r, NOISE_RATES[Noise::ChangedEmail as usize].permille)
            {
                if p.job.is_none() {
                    let company = r.below(COMPANIES as u64) as usize;
                    p.job = Some(new_job(&mut r, p, company, emails));
                }
                let old = p.job.as_ref().map_or(0, |j| j.company);
                let company = (old + 1 + r.below(COMPANIES as u64 - 1) as usize) % COMPANIES;
                p.new_job = Some(new_job(&mut r, p, company, emails));
            }
        }
    }

    /// Salesforce-style ids of people's first CRM contact (billing and helpdesk refer to it).
    fn crm_ids(&mut self, seed: u64) {
        let mut r = Rng::stream(seed, "quality/crm-ids");
        let mut ids = HashSet::new();
        for p in self.people.iter_mut() {
            if p.apps.iter().any(|a| a.src == Src::Crm && !a.dup) {
                p.crm_id = Some(unique_id(&mut r, &mut ids, |r| {
                    format!("003{}", r.chars(BASE62, 15))
                }));
            }
        }
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn unique_id(r: &mut Rng, ids: &mut HashSet<String>, make: impl Fn(&mut Rng) -> String) -> String {
    loop {
        let id = make(r);
        if ids.insert(id.clone()) {
            return id;
        }
    }
}

fn personal_email(r: &mut Rng, p: &Person, used: &mut HashSet<String>) -> String {
    let (g, f) = (slug(p.given_name()), slug(p.family));
    let g1 = &g[..1];
    let year = civil_from_days(p.birth).0 % 100;
    let local = match r.below(8) {
        0 => format!("{g}.{f}"),
        1 => format!("{g}{f}"),
        2 => format!("{g1}{f}"),
        3 => format!("{g}_{f}"),
        4 => format!("{f}.{g}"),
        5 => format!("{g}.{f}{year:02}"),
        6 => format!("{g}{}{}", &f[..1], r.range(1, 99)),
        _ => format!("{g}{f}{}", r.range(1, 99)),
    };
    let provider = MAIL_PROVIDERS[skewed(r, MAIL_PROVIDERS.len())];
    unique_email(r, &local, provider, used)
}

fn new_job(r: &mut Rng, p: &Person, company: usize, used: &mut HashSet<String>) -> Job {
    let (g, f) = (slug(p.given_name()), slug(p.family));
    let local = match r.below(3) {
        0 => format!("{g}.{f}"),
        1 => format!("{}{f}", &g[..1]),
        _ => g,
    };
    Job {
        company,
        email: unique_email(r, &local, &company_domain(company), used),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Counts of drawn noise: (affected, eligible) per [`Noise`].
struct Tally([(u64, u64); NOISE_COUNT]);

impl Tally {
    /// Draw `noise` at its configured rate and count the draw.
    fn roll(&mut self, r: &mut Rng, noise: Noise) -> bool {
        let hit = permille(r, NOISE_RATES[noise as usize].permille);
        let c = &mut self.0[noise as usize];
        c.1 += 1;
        c.0 += u64::from(hit);
        hit
    }

    /// Draw a "field missing" rate unless the field is required.
    fn missing(&mut self, r: &mut Rng, noise: Noise, required: bool) -> bool {
        !required && self.roll(r, noise)
    }
}

/// A phone number as people and systems write it. Style 0 is E.164; the others map onto the
/// demo's formats (the order is part of the generated bytes).
fn format_phone(d: &str, style: u64) -> String {
    const DEMO_STYLE: [u64; 8] = [5, 0, 1, 2, 3, 4, 6, 7];
    crate::demo::format_phone(d, DEMO_STYLE[(style as usize).min(7)])
}

/// `jane.doe@example.com` → `Jane.Doe@Example.com`.
fn capitalized(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut start = true;
    for c in email.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = matches!(c, '.' | '@' | '_');
    }
    out
}

/// One typing mistake in a name: substitution, deletion, doubled letter or transposition,
/// never in the first letter (people rarely get that one wrong).
fn typo(r: &mut Rng, name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < 3 {
        return name.to_string();
    }
    for _ in 0..8 {
        let mut c = chars.clone();
        let i = 1 + r.below(c.len() as u64 - 1) as usize;
        match r.below(4) {
            0 => c[i] = char::from(b'a' + r.below(26) as u8),
            1 => {
                c.remove(i);
            }
            2 => c.insert(i, c[i]),
            _ if i + 1 < c.len() => c.swap(i, i + 1),
            _ => c.swap(i - 1, i),
        }
        let s: String = c.into_iter().collect();
        if s != name && !s.starts_with(' ') && !s.ends_with(' ') {
            return s;
        }
    }
    name.to_string()
}

/// Another spelling of a name: a listed variant, or its ASCII form (ü as ue or u).
fn transliterate(r: &mut Rng, name: &str) -> String {
    if let Some((_, variants)) = NAME_VARIANTS.iter().find(|(n, _)| *n == name) {
        return r.pick(variants).to_string();
    }
    ascii_fold(name, r.chance(60))
}

struct Names {
    given: String,
    family: String,
}

/// A rendered record before it becomes a line.
struct Row {
    at: i64,
    id: String,
    line: String,
    person: usize,
    trap: Option<TrapClass>,
}

struct Renderer<'w> {
    world: &'w World,
    tally: Tally,
}

fn ymd(days: i64) -> (i64, u32, u32) {
    civil_from_days(days)
}

impl Renderer<'_> {
    /// The person's names as this record writes them. `strict` (the under-merge class): no
    /// typo, nickname or swap, so the names agree up to case, accents and format.
    fn names(&mut self, r: &mut Rng, p: &Person, strict: bool) -> Names {
        let t = &mut self.tally;
        let mut given = p.given_name().to_string();
        let mut family = p.family.to_string();
        if !strict && !p.nicks().is_empty() && t.roll(r, Noise::Nickname) {
            given = r.pick(p.nicks()).to_string();
        }
        if p.has_variant() && t.roll(r, Noise::Translit) {
            given = transliterate(r, &given);
            family = transliterate(r, &family);
        }
        if !strict && t.roll(r, Noise::Typo) {
            if r.chance(50) {
                given = typo(r, &given);
            } else {
                family = typo(r, &family);
            }
        }
        if !strict && t.roll(r, Noise::Swap) {
            std::mem::swap(&mut given, &mut family);
        }
        if t.roll(r, Noise::NameCase) {
            if r.chance(50) {
                given = given.to_uppercase();
                family = family.to_uppercase();
            } else {
                given = given.to_lowercase();
                family = family.to_lowercase();
            }
        }
        Names { given, family }
    }

    /// An email as typed. `shared`: a household's mailbox, which stays exactly the value the
    /// members share (no Gmail variant), so the trap is what it says.
    fn email_text(&mut self, r: &mut Rng, email: &str, space: bool, shared: bool) -> String {
        let mut e = email.to_string();
        let gmail = !shared && e.ends_with("@gmail.com");
        if gmail && self.tally.roll(r, Noise::GmailVariant) {
            let local = &email[..email.len() - "@gmail.com".len()];
            let local = if local.contains('.') && r.chance(60) {
                local.replace('.', "")
            } else if local.len() > 2 && !local.contains('.') && r.chance(50) {
                let i = 1 + r.below(local.len() as u64 - 2) as usize;
                format!("{}.{}", &local[..i], &local[i..])
            } else {
                format!(
                    "{local}+{}",
                    r.pick(&["shop", "news", "work", "bills", "promo"])
                )
            };
            e = format!("{local}@gmail.com");
        }
        if self.tally.roll(r, Noise::EmailCase) {
            e = if r.chance(25) {
                e.to_ascii_uppercase()
            } else {
                capitalized(&e)
            };
        }
        if space {
            e = if r.chance(50) {
                format!(" {e}")
            } else {
                format!("{e} ")
            };
        }
        e
    }

    fn phone_text(&mut self, r: &mut Rng, digits: &str) -> String {
        let style = if self.tally.roll(r, Noise::PhoneFormat) {
            1 + r.below(7)
        } else {
            0
        };
        format_phone(digits, style)
    }

    /// The birth date as written, possibly with a typo that still is a valid date.
    fn birth(&mut self, r: &mut Rng, p: &Person) -> (i64, u32, u32) {
        let (y, m, d) = ymd(p.birth);
        if !self.tally.roll(r, Noise::DobTypo) {
            return (y, m, d);
        }
        if d <= 12 && d != m && r.chance(50) {
            return (y, d, m);
        }
        // Days one digit away (either digit) that exist in that month: 30 → 10, 20; 7 → 1..9.
        let (next_y, next_m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let month_len = (days_from_civil(next_y, next_m, 1) - days_from_civil(y, m, 1)) as u32;
        let options: Vec<u32> = (1..=month_len)
            .filter(|&day| day != d && (day / 10 == d / 10 || day % 10 == d % 10))
            .collect();
        (y, m, options[r.below(options.len() as u64) as usize])
    }

    /// Street line, city, state, ZIP.
    fn address(
        &mut self,
        r: &mut Rng,
        a: &Addr,
    ) -> (String, &'static str, &'static str, &'static str) {
        let (abbr, long) = STREET_SUFFIXES[a.suffix];
        let suffix = if self.tally.roll(r, Noise::AddressLong) {
            long
        } else {
            abbr
        };
        let mut line = format!("{} {} {suffix}", a.no, Q_STREETS[a.street]);
        if let Some(unit) = &a.unit {
            let _ = match r.below(3) {
                0 => write!(line, " Apt {unit}"),
                1 => write!(line, " #{unit}"),
                _ => write!(line, " Unit {unit}"),
            };
        }
        if self.tally.roll(r, Noise::AddressUpper) {
            line = line.to_uppercase();
        }
        let (city, state, _, zips) = Q_CITIES[a.city];
        (line, city, state, zips[a.zip])
    }

    /// Which email a record shows, and whether it is the person's trap value. `work_pct`:
    /// how often this system sees the work address; a duplicate record shows the other one.
    fn pick_email(
        &self,
        r: &mut Rng,
        p: &Person,
        app: &App,
        early: bool,
        work_pct: u64,
    ) -> (String, bool) {
        let household = p.class() == Some(TrapClass::Household);
        match p.trap_value() {
            Some((false, value)) if app.anchor || (household && r.chance(70)) => {
                return (value.to_string(), true);
            }
            _ => {}
        }
        if let (Some(alt), Src::Billing) = (&p.alt_email, app.src) {
            return (alt.clone(), false);
        }
        if let (Some(old), Some(new)) = (&p.job, &p.new_job) {
            let job = if early { old } else { new };
            return (job.email.clone(), false);
        }
        match &p.job {
            Some(job) if r.chance(work_pct) != app.dup => (job.email.clone(), false),
            _ => (p.email.clone(), false),
        }
    }

    /// Which phone (ten digits, or a placeholder's text) a record shows, and whether it is the
    /// person's trap value. `home_pct`: how often this system has the home line.
    fn pick_phone(
        &self,
        r: &mut Rng,
        p: &Person,
        app: &App,
        trap_pct: u64,
        home_pct: u64,
    ) -> (String, bool) {
        let placeholder = p.class() == Some(TrapClass::Placeholder);
        match p.trap_value() {
            Some((true, value)) if app.anchor || (!placeholder && r.chance(trap_pct)) => {
                return (value.to_string(), true);
            }
            _ => {}
        }
        let number = match &p.home {
            Some(home) if r.chance(home_pct) != app.dup => home,
            _ => &p.mobile,
        };
        // A household's landline is its home line too: whichever way it is chosen, it is the
        // shared value.
        let shared = p.shared.as_ref().is_some_and(|s| &s.1 == number);
        (number.clone(), shared)
    }

    /// Decide what record `index` of a person carries (the "missing" draws happen here).
    fn plan(&mut self, r: &mut Rng, p: &Person, index: usize) -> Plan {
        let app = &p.apps[index];
        let early = is_early(p, app);
        let strict = p.class() == Some(TrapClass::NoSharedId);
        let mut plan = Plan {
            app: index,
            email: None,
            phone: None,
            birth: false,
            address: false,
            crm_link: false,
            family: true,
            company: false,
        };
        match app.src {
            Src::Crm => {
                plan.email = self.planned_email(r, p, app, early, 50, Noise::CrmEmailMissing);
                plan.phone = self.planned_phone(r, p, app, (70, 25), Noise::CrmPhoneMissing);
                plan.birth = !self.tally.missing(r, Noise::CrmBirthMissing, strict);
                plan.address = !self.tally.missing(r, Noise::CrmAddressMissing, strict);
            }
            Src::Billing => {
                plan.email = self.planned_email(r, p, app, early, 20, Noise::BillingEmailMissing);
                if !strict {
                    let noise = Noise::BillingPhoneMissing;
                    plan.phone = self.planned_phone(r, p, app, (50, 15), noise);
                }
                let t = &mut self.tally;
                plan.address = !t.missing(r, Noise::BillingAddressMissing, strict);
                plan.birth = !t.missing(r, Noise::BillingBirthMissing, strict);
                plan.crm_link =
                    p.crm_id.is_some() && !strict && !t.roll(r, Noise::BillingCrmIdMissing);
            }
            Src::Helpdesk => {
                let noise = Noise::HelpdeskEmailMissing;
                plan.email = self.planned_email(r, p, app, early, 30, noise);
                let t = &mut self.tally;
                // Helpdesk users give a phone rarely, and never a trap value (the anchor of a
                // phone trap is never a helpdesk record).
                if !t.missing(r, Noise::HelpdeskPhoneMissing, false) {
                    plan.phone = Some((p.mobile.clone(), false));
                }
                plan.family = !t.missing(r, Noise::HelpdeskFamilyMissing, false);
                plan.crm_link = p.crm_id.is_some() && !t.roll(r, Noise::HelpdeskCrmIdMissing);
            }
            Src::Phone => {
                plan.phone = Some(self.pick_phone(r, p, app, 60, 30));
                let t = &mut self.tally;
                // Contacts rarely carry an email, and then the personal one.
                if !t.missing(r, Noise::PhoneEmailMissing, false) {
                    plan.email = Some((p.email.clone(), false));
                }
                plan.family = !t.missing(r, Noise::PhoneFamilyMissing, false);
                plan.company =
                    current_job(p, early).is_some() && !t.roll(r, Noise::PhoneCompanyMissing);
            }
        }
        plan
    }

    /// The email a record carries, unless it is drawn missing (a trap value never is, nor the
    /// under-merge class's).
    fn planned_email(
        &mut self,
        r: &mut Rng,
        p: &Person,
        app: &App,
        early: bool,
        work_pct: u64,
        missing: Noise,
    ) -> Option<(String, bool)> {
        let strict = p.class() == Some(TrapClass::NoSharedId);
        let (email, trap) = self.pick_email(r, p, app, early, work_pct);
        (trap || !self.tally.missing(r, missing, strict)).then_some((email, trap))
    }

    /// The phone a record carries, unless it is drawn missing (a trap value never is).
    /// `pcts`: how often a trap value and the home line are shown.
    fn planned_phone(
        &mut self,
        r: &mut Rng,
        p: &Person,
        app: &App,
        pcts: (u64, u64),
        missing: Noise,
    ) -> Option<(String, bool)> {
        let (phone, trap) = self.pick_phone(r, p, app, pcts.0, pcts.1);
        (trap || !self.tally.missing(r, missing, false)).then_some((phone, trap))
    }

    /// Make sure a person's records are connected by more than the name ([`BRIDGING`]): union
    /// records that share an email, a phone, the CRM id, a birth date or an address; while that
    /// leaves several groups, join one to the largest with [`choose_bridge`]. Returns how many
    /// fields were set. The under-merge class is left as it is, by design.
    fn bridge(&mut self, p: &Person, plans: &mut [Plan]) -> u64 {
        if plans.len() < 2 || p.class() == Some(TrapClass::NoSharedId) {
            return 0;
        }
        let mut changed = 0;
        // Each step joins one group to the largest; the cap only guards against a replaced
        // value splitting a group again forever.
        for _ in 0..2 * plans.len() {
            let groups = components(p, plans);
            let mut sizes: HashMap<usize, usize> = HashMap::new();
            for &g in &groups {
                *sizes.entry(g).or_default() += 1;
            }
            if sizes.len() < 2 {
                break;
            }
            // The largest group (ties: the one holding the earlier record).
            let main = (0..groups.len())
                .max_by_key(|&i| (sizes[&groups[i]], std::cmp::Reverse(i)))
                .map_or(0, |i| groups[i]);
            let other = groups.iter().copied().find(|&g| g != main).unwrap_or(main);
            let xs: Vec<usize> = (0..plans.len()).filter(|&i| groups[i] == other).collect();
            let ys: Vec<usize> = (0..plans.len()).filter(|&i| groups[i] == main).collect();
            let Some(steps) = choose_bridge(p, plans, &xs, &ys) else {
                break;
            };
            for (k, phone, value) in steps {
                let src = p.apps[plans[k].app].src;
                let field = if phone {
                    &mut plans[k].phone
                } else {
                    &mut plans[k].email
                };
                if field.is_none() {
                    // The field was drawn missing but is written after all: the summary counts
                    // the data, so the drawn rate and the written share differ by the fills.
                    let noise = match (src, phone) {
                        (Src::Crm, false) => Noise::CrmEmailMissing,
                        (Src::Crm, true) => Noise::CrmPhoneMissing,
                        (Src::Billing, false) => Noise::BillingEmailMissing,
                        (Src::Billing, true) => Noise::BillingPhoneMissing,
                        (Src::Helpdesk, false) => Noise::HelpdeskEmailMissing,
                        (Src::Helpdesk, true) => Noise::HelpdeskPhoneMissing,
                        (Src::Phone, _) => Noise::PhoneEmailMissing,
                    };
                    self.tally.0[noise as usize].0 -= 1;
                }
                *field = Some((value, false));
                changed += 1;
            }
        }
        changed
    }

    fn crm(&mut self, r: &mut Rng, ids: &mut HashSet<String>, i: usize, plan: &Plan) -> Row {
        let w = self.world;
        let p = &w.people[i];
        let app = &plan_app(p, plan);
        let early = is_early(p, app);
        let strict = p.class() == Some(TrapClass::NoSharedId);
        let id = if app.dup {
            unique_id(r, ids, |r| format!("003{}", r.chars(BASE62, 15)))
        } else {
            p.crm_id.clone().unwrap_or_default()
        };
        let names = self.names(r, p, strict);
        let space = self.tally.roll(r, Noise::Whitespace);
        let email = self.plan_email(r, p, plan, space).unwrap_or_default();
        let phone = self.plan_phone(r, p, plan).unwrap_or_default();
        let birth = if plan.birth {
            let (y, m, d) = self.birth(r, p);
            format!("{m:02}/{d:02}/{y}")
        } else {
            String::new()
        };
        let (street, city, state, zip, country) = if plan.address {
            let (line, city, state, zip) = self.address(r, current_addr(p, early));
            let country = match r.below(20) {
                0..=13 => "US",
                14..=17 => "USA",
                _ => "United States",
            };
            (line, city, state, zip, country)
        } else {
            Default::default()
        };
        let company = current_job(p, early).map(|j| company_name(j.company));
        let (mut first, mut last) = (names.given, names.family);
        if space {
            first.push(' ');
            last.insert(0, ' ');
        }
        let mut line = String::new();
        csv_line(
            &mut line,
            &[
                &id,
                &first,
                &last,
                &email,
                &phone,
                &street,
                city,
                state,
                zip,
                country,
                &birth,
                company.as_deref().unwrap_or(""),
                &sql_datetime(app.at),
            ],
        );
        self.row(app, id, line, i, plan)
    }

    fn billing(&mut self, r: &mut Rng, ids: &mut HashSet<String>, i: usize, plan: &Plan) -> Row {
        #[derive(Serialize)]
        struct Customer<'a> {
            id: &'a str,
            object: &'static str,
            email: Option<String>,
            name: String,
            phone: Option<String>,
            address: Option<BillingAddress>,
            metadata: Metadata<'a>,
            created: i64,
            updated: i64,
        }
        #[derive(Serialize)]
        struct BillingAddress {
            line1: String,
            city: &'static str,
            state: &'static str,
            postal_code: &'static str,
            country: &'static str,
        }
        #[derive(Serialize)]
        struct Metadata<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            crm_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            birth_date: Option<String>,
            plan: &'static str,
        }
        let w = self.world;
        let p = &w.people[i];
        let app = &plan_app(p, plan);
        let early = is_early(p, app);
        let strict = p.class() == Some(TrapClass::NoSharedId);
        let id = unique_id(r, ids, |r| format!("cus_{}", r.chars(BASE62, 14)));
        let names = self.names(r, p, strict);
        let space = self.tally.roll(r, Noise::Whitespace);
        let sep = if space { "  " } else { " " };
        let name = if r.chance(35) {
            format!("{}, {}", names.family, names.given)
        } else {
            format!("{}{sep}{}", names.given, names.family)
        };
        let email = self.plan_email(r, p, plan, space);
        let phone = self.plan_phone(r, p, plan);
        let address = plan.address.then(|| {
            let (line1, city, state, postal_code) = self.address(r, current_addr(p, early));
            BillingAddress {
                line1,
                city,
                state,
                postal_code,
                country: "US",
            }
        });
        let birth_date = plan.birth.then(|| {
            let (y, m, d) = self.birth(r, p);
            format!("{y:04}-{m:02}-{d:02}")
        });
        let crm_id = p.crm_id.as_deref().filter(|_| plan.crm_link);
        let created = (app.at - r.range(0, 3 * 365 * 86_400)).max(unix(2016, 1, 1));
        let customer = Customer {
            id: &id,
            object: "customer",
            email,
            name,
            phone,
            address,
            metadata: Metadata {
                crm_id,
                birth_date,
                plan: r.pick(PLANS),
            },
            created,
            updated: app.at,
        };
        let mut line = serde_json::to_string(&customer).expect("a customer serializes");
        line.push('\n');
        self.row(app, id, line, i, plan)
    }

    fn helpdesk(&mut self, r: &mut Rng, ids: &mut HashSet<String>, i: usize, plan: &Plan) -> Row {
        let w = self.world;
        let p = &w.people[i];
        let app = &plan_app(p, plan);
        let id = unique_id(r, ids, |r| {
            r.range(360_000_000_000, 399_999_999_999).to_string()
        });
        let names = self.names(r, p, false);
        let space = self.tally.roll(r, Noise::Whitespace);
        let name = if plan.family {
            let sep = if space { "  " } else { " " };
            format!("{}{sep}{}", names.given, names.family)
        } else {
            names.given
        };
        let email = self.plan_email(r, p, plan, space).unwrap_or_default();
        let phone = self.plan_phone(r, p, plan).unwrap_or_default();
        let external = p.crm_id.as_deref().filter(|_| plan.crm_link).unwrap_or("");
        let created = rfc3339_utc((app.at - r.range(0, 2 * 365 * 86_400)).max(unix(2016, 1, 1)));
        let mut line = String::new();
        csv_line(
            &mut line,
            &[
                &id,
                &name,
                &email,
                &phone,
                external,
                &created,
                &rfc3339_utc(app.at),
            ],
        );
        self.row(app, id, line, i, plan)
    }

    fn phone(&mut self, r: &mut Rng, ids: &mut HashSet<String>, i: usize, plan: &Plan) -> Row {
        let w = self.world;
        let p = &w.people[i];
        let app = &plan_app(p, plan);
        let early = is_early(p, app);
        let id = unique_id(r, ids, |r| r.range(10_000_000, 99_999_999).to_string());
        let names = self.names(r, p, false);
        let space = self.tally.roll(r, Noise::Whitespace);
        let (mut first, mut last) = (names.given, names.family);
        if !plan.family {
            last.clear();
        }
        if space {
            first.push(' ');
        }
        let phone = self.plan_phone(r, p, plan).unwrap_or_default();
        let email = self.plan_email(r, p, plan, false).unwrap_or_default();
        let company = match current_job(p, early) {
            Some(j) if plan.company => company_name(j.company),
            _ => String::new(),
        };
        if space && !last.is_empty() {
            last.push(' ');
        }
        let mut line = String::new();
        csv_line(
            &mut line,
            &[
                &id,
                &first,
                &last,
                &company,
                &phone,
                &email,
                &rfc3339_utc(app.at),
            ],
        );
        self.row(app, id, line, i, plan)
    }

    /// The planned email as typed: placeholders verbatim, anything else with case, whitespace
    /// and Gmail noise.
    fn plan_email(&mut self, r: &mut Rng, p: &Person, plan: &Plan, space: bool) -> Option<String> {
        let (email, trap) = plan.email.as_ref()?;
        Some(if *trap && p.class() == Some(TrapClass::Placeholder) {
            email.clone()
        } else {
            self.email_text(r, email, space, *trap)
        })
    }

    /// The planned phone as written: placeholders verbatim, numbers in one of the formats.
    fn plan_phone(&mut self, r: &mut Rng, p: &Person, plan: &Plan) -> Option<String> {
        let (phone, trap) = plan.phone.as_ref()?;
        Some(if *trap && p.class() == Some(TrapClass::Placeholder) {
            phone.clone()
        } else {
            self.phone_text(r, phone)
        })
    }

    fn row(&self, app: &App, id: String, line: String, person: usize, plan: &Plan) -> Row {
        let p = &self.world.people[person];
        let shown =
            plan.email.as_ref().is_some_and(|e| e.1) || plan.phone.as_ref().is_some_and(|e| e.1);
        let trap = match p.class() {
            Some(c @ (TrapClass::SameName | TrapClass::NoSharedId)) => Some(c),
            Some(c) if shown => Some(c),
            _ => None,
        };
        Row {
            at: app.at,
            id,
            line,
            person,
            trap,
        }
    }
}

/// What one record carries, decided before it is written so that a person's records can be
/// checked (and bridged) together. Values are (text, is the person's trap value).
#[derive(Debug, Clone)]
struct Plan {
    /// Index of the record in the person's `apps`.
    app: usize,
    email: Option<(String, bool)>,
    /// Ten digits, or a placeholder's text.
    phone: Option<(String, bool)>,
    birth: bool,
    address: bool,
    /// Billing `metadata.crm_id` / helpdesk `external_id` filled in.
    crm_link: bool,
    /// The family name is written (helpdesk, phone system).
    family: bool,
    /// The company is written (phone system).
    company: bool,
}

fn plan_app(p: &Person, plan: &Plan) -> App {
    p.apps[plan.app].clone()
}

/// Group a person's records by what they share besides the name; returns a group number per
/// record.
fn components(p: &Person, plans: &[Plan]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..plans.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let placeholder = p.class() == Some(TrapClass::Placeholder);
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, plan) in plans.iter().enumerate() {
        let app = &p.apps[plan.app];
        let mut keys = Vec::new();
        // A placeholder says nothing about who typed it.
        let real = |v: &&(String, bool)| !(placeholder && v.1);
        if let Some((email, _)) = plan.email.as_ref().filter(real) {
            keys.push(format!("e:{}", email_key(&email.to_ascii_lowercase())));
        }
        if let Some((phone, _)) = plan.phone.as_ref().filter(real) {
            keys.push(format!("p:{phone}"));
        }
        if (app.src == Src::Crm && !app.dup) || plan.crm_link {
            keys.push("crm".into());
        }
        if plan.birth {
            keys.push("birth".into());
        }
        if plan.address {
            let moved = p.new_addr.is_some() && !is_early(p, app);
            keys.push(format!("address:{moved}"));
        }
        for k in keys {
            let j = *owner.entry(k).or_insert(i);
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            parent[a] = b;
        }
    }
    (0..plans.len()).map(|i| find(&mut parent, i)).collect()
}

/// A way to join groups `xs` and `ys` (the largest): the fields to set, as (record, is the
/// phone, value), taking a value a record of the other group has. Sources change the field
/// they naturally carry first: a phone contact's number or a helpdesk user's email is replaced
/// (unless it is a trap value), CRM and billing records get an empty field filled; then a
/// helpdesk user gets a phone and CRM and billing values are replaced; a phone contact gets an
/// email last. When neither group has a usable email or phone for that, one record on each side
/// gets the person's mobile (or personal email). Trap values are never overwritten.
fn choose_bridge(
    p: &Person,
    plans: &[Plan],
    xs: &[usize],
    ys: &[usize],
) -> Option<Vec<(usize, bool, String)>> {
    let field = |k: usize, phone: bool| {
        if phone {
            &plans[k].phone
        } else {
            &plans[k].email
        }
    };
    let usable = |v: &Option<(String, bool)>| v.as_ref().filter(|v| !v.1).map(|v| v.0.clone());
    let free = |v: &Option<(String, bool)>| v.as_ref().is_none_or(|v| !v.1);
    // (rank, is the phone, may replace a value): lower ranks are tried first.
    let prefs = |k: usize| -> &'static [(u8, bool, bool)] {
        match p.apps[plans[k].app].src {
            Src::Phone => &[(0, true, true), (2, false, false)],
            Src::Helpdesk => &[(0, false, true), (1, true, false)],
            Src::Crm | Src::Billing => &[
                (0, true, false),
                (0, false, false),
                (1, true, true),
                (1, false, true),
            ],
        }
    };
    for rank in 0..3 {
        for (side, other) in [(xs, ys), (ys, xs)] {
            for &x in side {
                for &(_, phone, replace) in prefs(x).iter().filter(|p| p.0 == rank) {
                    let fits = if replace {
                        free(field(x, phone))
                    } else {
                        field(x, phone).is_none()
                    };
                    if !fits {
                        continue;
                    }
                    if let Some(value) = other.iter().find_map(|&y| usable(field(y, phone))) {
                        return Some(vec![(x, phone, value)]);
                    }
                }
            }
        }
    }
    for (phone, value) in [(true, &p.mobile), (false, &p.email)] {
        // Prefer empty fields, then non-trap ones.
        let pick = |ks: &[usize]| {
            let empty = ks.iter().copied().find(|&k| field(k, phone).is_none());
            empty.or_else(|| ks.iter().copied().find(|&k| free(field(k, phone))))
        };
        if let (Some(x), Some(y)) = (pick(xs), pick(ys)) {
            return Some(vec![(x, phone, value.clone()), (y, phone, value.clone())]);
        }
    }
    None
}

/// Whether a record is the person's first (by version): it shows the old address and job.
fn is_early(p: &Person, app: &App) -> bool {
    p.apps.iter().all(|a| a.at >= app.at)
}

fn current_addr(p: &Person, early: bool) -> &Addr {
    match &p.new_addr {
        Some(new) if !early => new,
        _ => &p.addr,
    }
}

fn current_job(p: &Person, early: bool) -> Option<&Job> {
    match &p.new_job {
        Some(new) if !early => Some(new),
        _ => p.job.as_ref(),
    }
}

fn person_id(i: usize) -> String {
    format!("p{i:06}")
}

fn group_label(p: &Person, i: usize) -> String {
    match p.trap {
        None => String::new(),
        Some((TrapClass::Placeholder, g)) => {
            let (phone, text, _) = PLACEHOLDERS[g];
            format!("{}:{text}", if phone { "phone" } else { "email" })
        }
        Some((TrapClass::NoSharedId, _)) => person_id(i),
        Some((class, g)) => format!("{}-{g}", class.as_str()),
    }
}

const HEADERS: [&str; 4] = [
    "Id,FirstName,LastName,Email,Phone,MailingStreet,MailingCity,MailingState,MailingPostalCode,MailingCountry,Birthdate,AccountName,LastModifiedDate\n",
    "",
    "id,name,email,phone,external_id,created_at,updated_at\n",
    "contact_id,first_name,last_name,company,phone_number,email,updated_at\n",
];

/// Generate the benchmark for `people` people: the four data files, `truth.csv` and the four
/// manifests, with a summary of what was generated. The same arguments always give the same
/// bytes.
pub fn quality_files(people: usize, seed: u64) -> (Vec<QualityFile>, QualitySummary) {
    let world = World::new(people, seed);
    let mut renderer = Renderer {
        world: &world,
        tally: Tally([(0, 0); NOISE_COUNT]),
    };
    for p in &world.people {
        if p.apps.len() >= 2 {
            // Counted here rather than drawn here: life events are drawn in `World::new`.
            let class = p.class();
            let c = &mut renderer.tally.0;
            if !matches!(class, Some(TrapClass::Household | TrapClass::NoSharedId)) {
                c[Noise::Moved as usize].1 += 1;
                c[Noise::Moved as usize].0 += u64::from(p.new_addr.is_some());
            }
            if !matches!(
                class,
                Some(TrapClass::Household | TrapClass::Switchboard | TrapClass::NoSharedId)
            ) {
                c[Noise::ChangedEmail as usize].1 += 1;
                c[Noise::ChangedEmail as usize].0 += u64::from(p.new_job.is_some());
            }
        }
        if p.class() != Some(TrapClass::NoSharedId) {
            let c = &mut renderer.tally.0[Noise::Duplicate as usize];
            c.1 += p.apps.iter().filter(|a| !a.dup).count() as u64;
            c.0 += p.apps.iter().filter(|a| a.dup).count() as u64;
        }
    }

    // Decide every record's fields person by person, then connect each person's records.
    let mut r = Rng::stream(seed, "quality/plan");
    let mut bridged = 0;
    let plans: Vec<Vec<Plan>> = world
        .people
        .iter()
        .map(|p| {
            let mut plans: Vec<Plan> = (0..p.apps.len())
                .map(|k| renderer.plan(&mut r, p, k))
                .collect();
            bridged += renderer.bridge(p, &mut plans);
            plans
        })
        .collect();

    let mut files = Vec::new();
    let mut truth = String::from("source,source_id,person_id,trap,trap_group\n");
    let mut records_per_file = Vec::new();
    let mut trap_records = [0u64; 5];
    for (k, src) in Src::ALL.into_iter().enumerate() {
        let mut r = Rng::stream(seed, &format!("quality/render/{}", src.name()));
        let mut ids = HashSet::new();
        let mut rows = Vec::new();
        for (i, p) in world.people.iter().enumerate() {
            for plan in plans[i].iter().filter(|plan| p.apps[plan.app].src == src) {
                rows.push(match src {
                    Src::Crm => renderer.crm(&mut r, &mut ids, i, plan),
                    Src::Billing => renderer.billing(&mut r, &mut ids, i, plan),
                    Src::Helpdesk => renderer.helpdesk(&mut r, &mut ids, i, plan),
                    Src::Phone => renderer.phone(&mut r, &mut ids, i, plan),
                });
            }
        }
        // Exports list records by modification time, not by person.
        rows.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        let mut out = String::from(HEADERS[k]);
        for row in &rows {
            out.push_str(&row.line);
            let p = &world.people[row.person];
            let (trap, group) = match row.trap {
                Some(c) => {
                    trap_records[c as usize] += 1;
                    (c.as_str(), group_label(p, row.person))
                }
                None => ("", String::new()),
            };
            csv_line(
                &mut truth,
                &[src.name(), &row.id, &person_id(row.person), trap, &group],
            );
        }
        records_per_file.push((QUALITY_DATA_FILES[k].0, rows.len() as u64));
        files.push(QualityFile {
            name: QUALITY_DATA_FILES[k].0,
            contents: out,
        });
    }
    files.push(QualityFile {
        name: "truth.csv",
        contents: truth,
    });
    for (name, text) in QUALITY_MANIFESTS {
        files.push(QualityFile {
            name,
            contents: text.to_string(),
        });
    }

    let traps = TrapClass::ALL
        .into_iter()
        .map(|class| TrapCount {
            class,
            permille: class.permille(),
            people: world
                .people
                .iter()
                .filter(|p| p.class() == Some(class))
                .count() as u64,
            groups: world.groups[class as usize] as u64,
            records: trap_records[class as usize],
        })
        .collect();
    let noise = NOISE_RATES
        .iter()
        .zip(renderer.tally.0)
        .map(|(rate, (affected, eligible))| NoiseCount {
            name: rate.name,
            permille: rate.permille,
            affected,
            eligible,
        })
        .collect();
    let summary = QualitySummary {
        seed,
        people: people as u64,
        records: records_per_file.iter().map(|f| f.1).sum(),
        records_per_file,
        traps,
        noise,
        bridged,
    };
    (files, summary)
}

/// Write the benchmark files into `dir` (created if missing); returns the paths and a summary.
pub fn write_quality(
    dir: &Path,
    people: usize,
    seed: u64,
) -> io::Result<(Vec<PathBuf>, QualitySummary)> {
    std::fs::create_dir_all(dir)?;
    let (files, summary) = quality_files(people, seed);
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let path = dir.join(f.name);
        std::fs::write(&path, f.contents)?;
        paths.push(path);
    }
    Ok((paths, summary))
}

impl QualitySummary {
    /// A readable report: records per file, trap classes and noise rates (configured and drawn).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} people, {} records (seed {})",
            self.people, self.records, self.seed
        );
        for (name, n) in &self.records_per_file {
            let _ = writeln!(s, "  {name:<14} {n:>9}");
        }
        let _ = writeln!(
            s,
            "\n{:<14} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "trap class", "people", "share", "target", "groups", "records"
        );
        for t in &self.traps {
            let _ = writeln!(
                s,
                "{:<14} {:>8} {:>7.1}% {:>7.1}% {:>8} {:>8}",
                t.class.as_str(),
                t.people,
                pct(t.people, self.people),
                f64::from(t.permille) / 10.0,
                t.groups,
                t.records
            );
        }
        let _ = writeln!(
            s,
            "\n{:<28} {:>9} {:>9} {:>8} {:>8}",
            "noise", "affected", "of", "share", "target"
        );
        for n in &self.noise {
            let _ = writeln!(
                s,
                "{:<28} {:>9} {:>9} {:>7.1}% {:>7.1}%",
                n.name,
                n.affected,
                n.eligible,
                pct(n.affected, n.eligible),
                f64::from(n.permille) / 10.0
            );
        }
        let _ = writeln!(
            s,
            "\nbridged: {} emails or phones copied from another record of the same person, so \
             that no record agrees with the rest of its person on the name alone",
            self.bridged
        );
        s
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// One row of `truth.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRow {
    /// Source name (`crm`, `billing`...).
    pub source: String,
    /// Record id in the source.
    pub source_id: String,
    /// The person behind the record.
    pub person: String,
    /// The trap class the record belongs to, if any.
    pub trap: Option<TrapClass>,
    /// The trap group (household, company, placeholder value, name group), empty if none.
    pub group: String,
}

/// One row of `onetruth export links --format csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// Source name.
    pub source: String,
    /// Record id in the source.
    pub source_id: String,
    /// The customer the resolver put the record in.
    pub customer: String,
}

/// Parse CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF) into rows.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .chars()
        .peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Positions of `names` in a header row; the first three are required.
fn columns(header: &[String], names: &[&str], what: &str) -> Result<Vec<Option<usize>>, String> {
    let cols: Vec<Option<usize>> = names
        .iter()
        .map(|n| header.iter().position(|h| h.trim() == *n))
        .collect();
    if cols[..3].iter().all(Option::is_some) {
        Ok(cols)
    } else {
        Err(format!(
            "{what}: the header must have the columns {}",
            names[..3].join(", ")
        ))
    }
}

/// Read `truth.csv` (`source,source_id,person_id[,trap[,trap_group]]`).
pub fn read_truth(text: &str) -> Result<Vec<TruthRow>, String> {
    let rows = parse_csv(text);
    let Some((header, body)) = rows.split_first() else {
        return Err("truth: empty file".into());
    };
    let cols = columns(
        header,
        &["source", "source_id", "person_id", "trap", "trap_group"],
        "truth",
    )?;
    let get = |row: &[String], c: Option<usize>| {
        c.and_then(|c| row.get(c))
            .map_or("", |s| s.as_str())
            .trim()
            .to_string()
    };
    body.iter()
        .enumerate()
        .filter(|(_, row)| !(row.len() == 1 && row[0].is_empty()))
        .map(|(n, row)| {
            let trap = get(row, cols[3]);
            let trap =
                if trap.is_empty() {
                    None
                } else {
                    Some(TrapClass::parse(&trap).ok_or_else(|| {
                        format!("truth line {}: unknown trap class `{trap}`", n + 2)
                    })?)
                };
            Ok(TruthRow {
                source: get(row, cols[0]),
                source_id: get(row, cols[1]),
                person: get(row, cols[2]),
                trap,
                group: get(row, cols[4]),
            })
        })
        .collect()
}

/// Read the links export (`source,source_id,customer_id`).
pub fn read_links(text: &str) -> Result<Vec<LinkRow>, String> {
    let rows = parse_csv(text);
    let Some((header, body)) = rows.split_first() else {
        return Err("links: empty file".into());
    };
    let cols = columns(header, &["source", "source_id", "customer_id"], "links")?;
    let get = |row: &[String], c: Option<usize>| {
        c.and_then(|c| row.get(c))
            .map_or("", |s| s.as_str())
            .trim()
            .to_string()
    };
    Ok(body
        .iter()
        .filter(|row| !(row.len() == 1 && row[0].is_empty()))
        .map(|row| LinkRow {
            source: get(row, cols[0]),
            source_id: get(row, cols[1]),
            customer: get(row, cols[2]),
        })
        .collect())
}

/// How a resolver did on one over-merge trap class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrapScore {
    /// The class.
    pub class: TrapClass,
    /// Trap groups with at least two distinct people among their trap records (a group of one
    /// cannot be over-merged).
    pub groups: u64,
    /// Groups with two or more of their people in one predicted customer.
    pub over_merged_groups: u64,
    /// `over_merged_groups / groups` (0 when there are no groups).
    pub group_rate: f64,
    /// Trap records of those groups.
    pub records: u64,
    /// Trap records whose predicted customer also holds another person of the same group.
    pub over_merged_records: u64,
    /// `over_merged_records / records`.
    pub record_rate: f64,
}

/// How a resolver did on the under-merge class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnderMergeScore {
    /// Always [`TrapClass::NoSharedId`].
    pub class: TrapClass,
    /// People in the class.
    pub people: u64,
    /// People whose records ended up in more than one customer.
    pub split_people: u64,
    /// `split_people / people`.
    pub rate: f64,
}

/// Pairwise quality of a clustering against the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Records in the truth.
    pub records: u64,
    /// Distinct people in the truth.
    pub people: u64,
    /// Predicted customers holding truth records (a record missing from the links counts as a
    /// customer of its own).
    pub predicted_clusters: u64,
    /// Pairs of records of the same person.
    pub true_pairs: u64,
    /// Pairs of records in the same predicted customer.
    pub predicted_pairs: u64,
    /// Pairs that are both.
    pub correct_pairs: u64,
    /// `correct / predicted` (1 when nothing was merged).
    pub precision: f64,
    /// `correct / true` (1 when there is nothing to merge).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Predicted customers holding more than one person.
    pub impure_clusters: u64,
    /// Records in the largest predicted customer.
    pub largest_cluster_records: u64,
    /// Distinct people in the predicted customer with the most people.
    pub largest_cluster_people: u64,
    /// Truth records the links do not mention (scored as singletons).
    pub missing_from_links: u64,
    /// Links to records the truth does not know (ignored).
    pub unknown_links: u64,
    /// Over-merge traps, in [`TrapClass::ALL`] order.
    pub traps: Vec<TrapScore>,
    /// The under-merge class.
    pub under_merge: UnderMergeScore,
    /// Predicted customers holding two or more people of one switchboard or placeholder group:
    /// customers held together (at least in part) by a generic value.
    pub generic_clusters: u64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn ratio(a: u64, b: u64, empty: f64) -> f64 {
    if b == 0 { empty } else { a as f64 / b as f64 }
}

/// Score predicted links against the truth. Pair counts come from a contingency table of
/// (predicted customer, true person): correct pairs = Σ C(n_ij, 2), predicted = Σ_i C(a_i, 2),
/// true = Σ_j C(b_j, 2); no pair is enumerated, so a million records score in a second.
pub fn score(truth: &[TruthRow], links: &[LinkRow]) -> Score {
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(truth.len());
    for (i, t) in truth.iter().enumerate() {
        index.insert((t.source.as_str(), t.source_id.as_str()), i);
    }
    let mut persons: HashMap<&str, u32> = HashMap::new();
    let person: Vec<u32> = truth
        .iter()
        .map(|t| {
            let n = persons.len() as u32;
            *persons.entry(t.person.as_str()).or_insert(n)
        })
        .collect();
    let mut customers: HashMap<&str, u32> = HashMap::new();
    let mut cluster: Vec<Option<u32>> = vec![None; truth.len()];
    let mut unknown_links = 0;
    for l in links {
        match index.get(&(l.source.as_str(), l.source_id.as_str())) {
            Some(&i) => {
                let n = customers.len() as u32;
                cluster[i] = Some(*customers.entry(l.customer.as_str()).or_insert(n));
            }
            None => unknown_links += 1,
        }
    }
    let mut next = customers.len() as u32;
    let mut missing = 0;
    let cluster: Vec<u32> = cluster
        .into_iter()
        .map(|c| {
            c.unwrap_or_else(|| {
                missing += 1;
                next += 1;
                next - 1
            })
        })
        .collect();
    // Only customers that hold truth records count.
    let mut cluster_size: HashMap<u32, u64> = HashMap::new();
    let mut person_size = vec![0u64; persons.len()];
    let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
    for (i, &c) in cluster.iter().enumerate() {
        *cluster_size.entry(c).or_default() += 1;
        person_size[person[i] as usize] += 1;
        *cells.entry((c, person[i])).or_default() += 1;
    }
    let correct: u64 = cells.values().map(|&n| pairs(n)).sum();
    let predicted: u64 = cluster_size.values().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = person_size.iter().map(|&n| pairs(n)).sum();
    let precision = ratio(correct, predicted, 1.0);
    let recall = ratio(correct, true_pairs, 1.0);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let mut cluster_people: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(c, p) in cells.keys() {
        cluster_people.entry(c).or_default().push(p);
    }
    let impure_clusters = cluster_people.values().filter(|v| v.len() > 1).count() as u64;
    let largest_cluster_records = cluster_size.values().copied().max().unwrap_or(0);
    let largest_cluster_people = cluster_people
        .values()
        .map(|v| v.len() as u64)
        .max()
        .unwrap_or(0);

    // Trap groups: the people of each (class, group) among its trap records.
    let mut group_people: HashMap<(TrapClass, &str), HashSet<u32>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        if let Some(class) = t.trap.filter(|c| c.is_over_merge()) {
            group_people
                .entry((class, t.group.as_str()))
                .or_default()
                .insert(person[i]);
        }
    }
    let mut traps = Vec::new();
    for class in TrapClass::ALL.into_iter().filter(|c| c.is_over_merge()) {
        let mut merged_groups: HashSet<&str> = HashSet::new();
        let (mut records, mut merged_records) = (0, 0);
        for (i, t) in truth.iter().enumerate() {
            if t.trap != Some(class) {
                continue;
            }
            let members = &group_people[&(class, t.group.as_str())];
            if members.len() < 2 {
                continue;
            }
            records += 1;
            let here = &cluster_people[&cluster[i]];
            if here.iter().any(|q| *q != person[i] && members.contains(q)) {
                merged_records += 1;
                merged_groups.insert(t.group.as_str());
            }
        }
        let groups = group_people
            .iter()
            .filter(|((c, _), m)| *c == class && m.len() > 1)
            .count() as u64;
        traps.push(TrapScore {
            class,
            groups,
            over_merged_groups: merged_groups.len() as u64,
            group_rate: ratio(merged_groups.len() as u64, groups, 0.0),
            records,
            over_merged_records: merged_records,
            record_rate: ratio(merged_records, records, 0.0),
        });
    }

    // Under-merge: people of the class whose records are in more than one customer.
    let mut spread: HashMap<u32, HashSet<u32>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        if t.trap == Some(TrapClass::NoSharedId) {
            spread.entry(person[i]).or_default().insert(cluster[i]);
        }
    }
    let split = spread.values().filter(|s| s.len() > 1).count() as u64;
    let under_merge = UnderMergeScore {
        class: TrapClass::NoSharedId,
        people: spread.len() as u64,
        split_people: split,
        rate: ratio(split, spread.len() as u64, 0.0),
    };

    // Customers holding two people of one generic-value group.
    let mut generic_of: HashMap<u32, Vec<&str>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        if matches!(
            t.trap,
            Some(TrapClass::Switchboard | TrapClass::Placeholder)
        ) {
            let groups = generic_of.entry(person[i]).or_default();
            if !groups.contains(&t.group.as_str()) {
                groups.push(t.group.as_str());
            }
        }
    }
    let generic_clusters = cluster_people
        .values()
        .filter(|people| {
            let mut seen: HashSet<&str> = HashSet::new();
            people.iter().any(|p| {
                generic_of
                    .get(p)
                    .is_some_and(|gs| gs.iter().any(|g| !seen.insert(*g)))
            })
        })
        .count() as u64;

    Score {
        records: truth.len() as u64,
        people: persons.len() as u64,
        predicted_clusters: cluster_size.len() as u64,
        true_pairs,
        predicted_pairs: predicted,
        correct_pairs: correct,
        precision,
        recall,
        f1,
        impure_clusters,
        largest_cluster_records,
        largest_cluster_people,
        missing_from_links: missing,
        unknown_links,
        traps,
        under_merge,
        generic_clusters,
    }
}

impl Score {
    /// A readable report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut kv = |k: &str, v: String| {
            let _ = writeln!(s, "{k:<22} {v}");
        };
        kv("records", self.records.to_string());
        kv("people", self.people.to_string());
        kv("predicted customers", self.predicted_clusters.to_string());
        kv("true pairs", self.true_pairs.to_string());
        kv("predicted pairs", self.predicted_pairs.to_string());
        kv("correct pairs", self.correct_pairs.to_string());
        kv("precision", format!("{:.4}", self.precision));
        kv("recall", format!("{:.4}", self.recall));
        kv("F1", format!("{:.4}", self.f1));
        kv(
            "impure customers",
            format!(
                "{} (largest: {} records, {} people)",
                self.impure_clusters, self.largest_cluster_records, self.largest_cluster_people
            ),
        );
        kv(
            "generic-value blobs",
            format!(
                "{} customers hold 2+ people of one switchboard or placeholder group",
                self.generic_clusters
            ),
        );
        if self.missing_from_links > 0 || self.unknown_links > 0 {
            kv(
                "link coverage",
                format!(
                    "{} truth records not in the links (scored as singletons), {} links not in the truth",
                    self.missing_from_links, self.unknown_links
                ),
            );
        }
        let _ = writeln!(
            s,
            "\n{:<14} {:>7} {:>12} {:>7}   {:>8} {:>12} {:>7}",
            "over-merge", "groups", "over-merged", "rate", "records", "over-merged", "rate"
        );
        for t in &self.traps {
            let _ = writeln!(
                s,
                "{:<14} {:>7} {:>12} {:>6.1}%   {:>8} {:>12} {:>6.1}%",
                t.class.as_str(),
                t.groups,
                t.over_merged_groups,
                100.0 * t.group_rate,
                t.records,
                t.over_merged_records,
                100.0 * t.record_rate
            );
        }
        let u = &self.under_merge;
        let _ = writeln!(
            s,
            "\n{:<14} {:>7} {:>12} {:>7}\n{:<14} {:>7} {:>12} {:>6.1}%",
            "under-merge",
            "people",
            "split",
            "rate",
            u.class.as_str(),
            u.people,
            u.split_people,
            100.0 * u.rate
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_table_matches_the_enum() {
        assert_eq!(NOISE_RATES.len(), NOISE_COUNT);
        assert_eq!(NOISE_RATES[Noise::Typo as usize].name, "typo");
        assert_eq!(
            NOISE_RATES[Noise::PhoneFormat as usize].name,
            "phone_format"
        );
        assert_eq!(NOISE_RATES[Noise::Duplicate as usize].name, "duplicate");
        assert_eq!(
            NOISE_RATES[Noise::BillingCrmIdMissing as usize].name,
            "billing.crm_id missing"
        );
        assert_eq!(
            NOISE_RATES[Noise::PhoneCompanyMissing as usize].name,
            "phone.company missing"
        );
        for (i, c) in TrapClass::ALL.into_iter().enumerate() {
            assert_eq!(TRAP_RATES[i].name, c.as_str());
            assert_eq!(c as usize, i);
        }
    }

    #[test]
    fn csv_parser_handles_quotes() {
        let rows = parse_csv("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"multi\nline\",z");
        assert_eq!(
            rows,
            vec![
                vec!["a".to_string(), "b".into()],
                vec!["x, y".into(), "say \"hi\"".into()],
                vec!["multi\nline".into(), "z".into()],
            ]
        );
    }

    #[test]
    fn typos_are_one_edit() {
        let mut r = Rng::new(3);
        for _ in 0..200 {
            let t = typo(&mut r, "Katherine");
            assert_ne!(t, "Katherine");
            assert!(t.starts_with('K'));
            let d = t.chars().count() as i64 - 9;
            assert!(d.abs() <= 1);
        }
        assert_eq!(ascii_fold("Müller", true), "Mueller");
        assert_eq!(ascii_fold("Weiß", false), "Weiss");
        assert_eq!(ascii_fold("José Núñez", false), "Jose Nunez");
    }

    #[test]
    fn phones_avoid_placeholders_and_reuse() {
        let mut r = Rng::new(9);
        let mut used = HashSet::new();
        for _ in 0..5000 {
            let p = new_phone(&mut r, "415", &mut used);
            assert_eq!(p.len(), 10);
            assert!(!p[3..].bytes().all(|b| b == p.as_bytes()[3]));
        }
        assert_eq!(used.len(), 5000);
    }
}
