//! The bundled demo: a few hundred fictional people rendered as four source-system exports with
//! the noise real exports have (formats, case, placeholders, gaps, duplicates, broken rows).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::rng::Rng;
use crate::time::{rfc3339_offset, rfc3339_utc, sql_datetime, unix};
use crate::words::*;

/// The seed of the bundled demo. Changing it (or the generator) changes the committed files in
/// `crates/onetruth/demo`, which a test compares byte for byte.
pub const DEMO_SEED: u64 = 0x6f6e_6574_7275_7468; // "onetruth"

/// How many people the demo world has.
pub const DEMO_PEOPLE: usize = 300;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFile {
    pub name: &'static str,
    pub contents: String,
}

/// The demo exports for [`DEMO_SEED`]: `crm.csv`, `billing.jsonl`, `helpdesk.csv`, `calls.csv`.
pub fn demo_files() -> Vec<DemoFile> {
    demo_files_with_seed(DEMO_SEED)
}

/// The demo exports for another seed (same shape, different people).
pub fn demo_files_with_seed(seed: u64) -> Vec<DemoFile> {
    let world = World::new(seed);
    vec![
        DemoFile {
            name: "crm.csv",
            contents: world.crm(seed),
        },
        DemoFile {
            name: "billing.jsonl",
            contents: world.billing(seed),
        },
        DemoFile {
            name: "helpdesk.csv",
            contents: world.helpdesk(seed),
        },
        DemoFile {
            name: "calls.csv",
            contents: world.calls(seed),
        },
    ]
}

// Counts of each kind of person and noise. Exact, so tests can state what the files hold.
const CRM_PEOPLE: usize = 250;
const BILLING_FROM_CRM: usize = 172;
const BILLING_ONLY: usize = 28;
const HELPDESK_ONLY: usize = 8;
const HELPDESK_KNOWN: usize = 92;
const CALLERS: usize = 140;
const CRM_DUPLICATES: usize = 8;
/// Two different people with the same name (they must not be merged on the name alone).
const NAMESAKES: (usize, usize) = (7, 151);
/// The company whose main line several CRM contacts list as their phone.
const SWITCHBOARD_COMPANY: usize = 0;
const SWITCHBOARD_PEOPLE: usize = 4;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";

#[derive(Debug, Clone)]
struct Person {
    given: &'static str,
    nick: Option<&'static str>,
    family: &'static str,
    email: String,
    work_email: Option<String>,
    /// Ten digits, NANP.
    phone: String,
    street_no: i64,
    street: &'static str,
    suffix: (&'static str, &'static str),
    city: &'static str,
    postcode: &'static str,
    birth: (i64, u32, u32),
    company: Option<usize>,
    plan: &'static str,
    in_crm: bool,
    in_billing: bool,
    /// Only ever appears as a caller in the phone log.
    calls_only: bool,
    crm_id: Option<String>,
}

impl Person {
    fn street(&self, long: bool) -> String {
        let suffix = if long { self.suffix.1 } else { self.suffix.0 };
        format!("{} {} {}", self.street_no, self.street, suffix)
    }
}

struct World {
    people: Vec<Person>,
    /// Helpdesk requesters: people known elsewhere, then helpdesk-only people.
    helpdesk: Vec<usize>,
    /// A company main line (ten digits) and the CRM contacts that list it as their phone.
    switchboard: String,
    switchboard_people: BTreeSet<usize>,
}

/// A phone number written one of the ways people and systems write them. The style numbers
/// are fixed: the committed demo files depend on them.
pub(crate) fn format_phone(digits: &str, style: u64) -> String {
    let (a, e, l) = (&digits[..3], &digits[3..6], &digits[6..]);
    match style {
        0 => format!("({a}) {e}-{l}"),
        1 => format!("{a}.{e}.{l}"),
        2 => format!("+1 {a} {e} {l}"),
        3 => format!("1-{a}-{e}-{l}"),
        4 => format!("{a}-{e}-{l}"),
        5 => format!("+1{a}{e}{l}"),
        7 => format!("{a} {e} {l}"),
        _ => digits.to_string(),
    }
}

/// `jane.doe@example.com` → `Jane.Doe@Example.com`.
fn capitalized_email(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut start = true;
    for c in email.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = matches!(c, '.' | '@' | '_');
    }
    out
}

/// An email as a person or a system typed it: sometimes capitalized or shouted, sometimes with
/// stray whitespace.
fn noisy_email(r: &mut Rng, email: &str, case_pct: u64, space_pct: u64) -> String {
    let mut e = if r.chance(case_pct) {
        if r.chance(25) {
            email.to_ascii_uppercase()
        } else {
            capitalized_email(email)
        }
    } else {
        email.to_string()
    };
    if r.chance(space_pct) {
        e = if r.chance(50) {
            format!(" {e} ")
        } else {
            format!("{e} ")
        };
    }
    e
}

/// Append one CSV row, quoting fields that need it.
pub(crate) fn csv_line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}

fn unique(set: &mut BTreeSet<String>, mut candidate: String, r: &mut Rng) -> String {
    while !set.insert(candidate.clone()) {
        let (local, domain) = candidate.split_once('@').expect("an email");
        candidate = format!("{local}{}@{domain}", r.below(10));
    }
    candidate
}

impl World {
    fn new(seed: u64) -> World {
        let mut r = Rng::stream(seed, "people");
        // Line 0100 of each area code is reserved for company switchboards; people get the
        // rest of the fictional 555-01xx range, each number used once.
        let mut pools: Vec<Vec<u32>> = CITIES
            .iter()
            .map(|_| {
                let mut v: Vec<u32> = (101..200).collect();
                r.shuffle(&mut v);
                v
            })
            .collect();
        let mut names = BTreeSet::new();
        let mut emails = BTreeSet::new();
        let mut people: Vec<Person> = Vec::with_capacity(DEMO_PEOPLE);
        for i in 0..DEMO_PEOPLE {
            let (given, nick, family) = if i == NAMESAKES.1 {
                let p = &people[NAMESAKES.0];
                (p.given, p.nick, p.family)
            } else {
                loop {
                    let (g, n) = r.pick(GIVEN);
                    let f = r.pick(FAMILY);
                    if names.insert((g, f)) {
                        break (g, n, f);
                    }
                }
            };
            let city_idx = r.below(CITIES.len() as u64) as usize;
            let (city, _, postcodes) = CITIES[city_idx];
            let postcode = r.pick(postcodes);
            let phone_idx = if r.chance(80) {
                city_idx
            } else {
                r.below(CITIES.len() as u64) as usize
            };
            let line = pools[phone_idx].pop().expect("enough 555-01xx numbers");
            let phone = format!("{}555{line:04}", CITIES[phone_idx].1);
            let (g, f) = (slug(given), slug(family));
            let local = match r.below(4) {
                0 => format!("{g}.{f}"),
                1 => format!("{g}{f}"),
                2 => format!("{}{f}{}", &g[..1], r.range(1, 99)),
                _ => format!("{g}.{f}{}", r.range(60, 99)),
            };
            let email = unique(
                &mut emails,
                format!("{local}@{}", r.pick(PERSONAL_DOMAINS)),
                &mut r,
            );
            let company = r
                .chance(55)
                .then(|| r.below(COMPANIES.len() as u64) as usize);
            people.push(Person {
                given,
                nick,
                family,
                email,
                work_email: None,
                phone,
                street_no: r.range(1, 9899),
                street: r.pick(STREETS),
                suffix: r.pick(STREET_SUFFIXES),
                city,
                postcode,
                birth: (
                    r.range(1950, 2004),
                    r.range(1, 12) as u32,
                    r.range(1, 28) as u32,
                ),
                company,
                plan: r.pick(PLANS),
                in_crm: false,
                in_billing: false,
                calls_only: false,
                crm_id: None,
            });
        }

        let mut r = Rng::stream(seed, "membership");
        let mut order: Vec<usize> = (0..DEMO_PEOPLE).collect();
        r.shuffle(&mut order);
        let (crm, rest) = order.split_at(CRM_PEOPLE);
        let mut crm_sorted = crm.to_vec();
        crm_sorted.sort();
        for &i in crm {
            people[i].in_crm = true;
        }
        let mut billed = crm.to_vec();
        r.shuffle(&mut billed);
        for &i in billed[..BILLING_FROM_CRM]
            .iter()
            .chain(&rest[..BILLING_ONLY])
        {
            people[i].in_billing = true;
        }
        let helpdesk_only = &rest[BILLING_ONLY..BILLING_ONLY + HELPDESK_ONLY];
        for &i in &rest[BILLING_ONLY + HELPDESK_ONLY..] {
            people[i].calls_only = true;
        }
        let mut known: Vec<usize> = (0..DEMO_PEOPLE)
            .filter(|&i| people[i].in_crm || people[i].in_billing)
            .collect();
        r.shuffle(&mut known);
        let mut helpdesk = known[..HELPDESK_KNOWN].to_vec();
        helpdesk.extend_from_slice(helpdesk_only);

        // A few CRM contacts at one company list its switchboard as their phone.
        let switchboard_city = CITIES
            .iter()
            .position(|c| c.0 == people[crm_sorted[0]].city)
            .unwrap_or(0);
        let switchboard = format!("{}5550100", CITIES[switchboard_city].1);
        let mut sb = crm_sorted.clone();
        r.shuffle(&mut sb);
        for &i in sb.iter().take(SWITCHBOARD_PEOPLE) {
            people[i].company = Some(SWITCHBOARD_COMPANY);
            people[i].city = CITIES[switchboard_city].0;
            people[i].postcode = CITIES[switchboard_city].2[0];
        }

        // Work emails, unique like the personal ones.
        for p in people.iter_mut() {
            if let Some(c) = p.company {
                let (g, f) = (slug(p.given), slug(p.family));
                let local = if r.chance(50) {
                    format!("{}{f}", &g[..1])
                } else {
                    format!("{g}.{f}")
                };
                p.work_email = Some(unique(
                    &mut emails,
                    format!("{local}@{}", COMPANIES[c].1),
                    &mut r,
                ));
            }
        }
        // Salesforce-style 18-character contact ids.
        let mut ids = BTreeSet::new();
        for &i in &crm_sorted {
            let id = loop {
                let id = format!("003Dp00000{}", r.chars(BASE62, 8));
                if ids.insert(id.clone()) {
                    break id;
                }
            };
            people[i].crm_id = Some(id);
        }
        World {
            people,
            helpdesk,
            switchboard,
            switchboard_people: sb.iter().take(SWITCHBOARD_PEOPLE).copied().collect(),
        }
    }

    fn people_where(&self, f: impl Fn(&Person) -> bool) -> Vec<usize> {
        (0..self.people.len())
            .filter(|&i| f(&self.people[i]))
            .collect()
    }

    /// Salesforce-like contacts export.
    fn crm(&self, seed: u64) -> String {
        let mut r = Rng::stream(seed, "crm");
        let crm = self.people_where(|p| p.in_crm);
        // Disjoint sets of contacts that carry one kind of noise each.
        let mut pool: Vec<usize> = crm
            .iter()
            .copied()
            .filter(|i| !self.switchboard_people.contains(i))
            .collect();
        r.shuffle(&mut pool);
        let mut take = |n: usize| -> BTreeSet<usize> { pool.drain(..n).collect() };
        let test_email = take(5);
        let na_email = take(2);
        let zero_phone = take(3);
        let na_phone = take(2);
        let deleted = take(3);
        let duplicated = take(CRM_DUPLICATES);

        let mut out = String::new();
        csv_line(
            &mut out,
            &[
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "Phone",
                "MailingStreet",
                "MailingCity",
                "MailingPostalCode",
                "MailingCountry",
                "Birthdate",
                "AccountName",
                "LastModifiedDate",
                "IsDeleted",
            ],
        );
        let (start, end) = (unix(2023, 6, 1), unix(2025, 5, 31));
        let mut duplicates = Vec::new();
        for &i in &crm {
            let p = &self.people[i];
            let used_work = p.work_email.is_some() && r.chance(55);
            let email = if test_email.contains(&i) {
                "test@test.com".to_string()
            } else if na_email.contains(&i) {
                "n/a".to_string()
            } else if r.chance(4) {
                String::new()
            } else {
                let e = if used_work {
                    p.work_email.as_deref().unwrap_or(&p.email)
                } else {
                    &p.email
                };
                noisy_email(&mut r, e, 12, 6)
            };
            let phone = if zero_phone.contains(&i) {
                "0000000000".to_string()
            } else if na_phone.contains(&i) {
                "n/a".to_string()
            } else if self.switchboard_people.contains(&i) {
                format_phone(&self.switchboard, r.below(5))
            } else if r.chance(6) {
                String::new()
            } else {
                format_phone(&p.phone, r.below(7))
            };
            let has_address = !r.chance(8);
            let country = match r.below(20) {
                0..=11 => "US",
                12..=16 => "USA",
                _ => "United States",
            };
            let (y, m, d) = p.birth;
            let birth = if r.chance(65) {
                format!("{m:02}/{d:02}/{y}")
            } else {
                String::new()
            };
            let modified = r.range(start, end);
            let street = p.street(false);
            let account = p.company.map_or("", |c| COMPANIES[c].0);
            let addr = |s: &'static str| if has_address { s } else { "" };
            csv_line(
                &mut out,
                &[
                    p.crm_id.as_deref().expect("CRM people have ids"),
                    p.given,
                    p.family,
                    &email,
                    &phone,
                    if has_address { &street } else { "" },
                    addr(p.city),
                    addr(p.postcode),
                    addr(country),
                    &birth,
                    account,
                    &sql_datetime(modified),
                    if deleted.contains(&i) {
                        "true"
                    } else {
                        "false"
                    },
                ],
            );
            if duplicated.contains(&i) {
                duplicates.push((i, used_work, modified));
            }
        }
        // Duplicate contacts created later for the same people: nickname, the other email,
        // no birth date.
        for (i, used_work, modified) in duplicates {
            let p = &self.people[i];
            let id = format!("003Dp00001{}", r.chars(BASE62, 8));
            let email = match (&p.work_email, used_work) {
                (Some(_), true) => p.email.clone(),
                (Some(w), false) => w.clone(),
                (None, _) => capitalized_email(&p.email),
            };
            let phone = if r.chance(30) {
                String::new()
            } else {
                format_phone(&p.phone, r.below(7))
            };
            let modified = r.range(modified + 3600, end.max(modified + 7200));
            csv_line(
                &mut out,
                &[
                    &id,
                    p.nick.unwrap_or(p.given),
                    p.family,
                    &email,
                    &phone,
                    &p.street(false),
                    p.city,
                    p.postcode,
                    "US",
                    "",
                    p.company.map_or("", |c| COMPANIES[c].0),
                    &sql_datetime(modified),
                    "false",
                ],
            );
        }
        out
    }

    /// Stripe-like customers, one JSON object per line, oldest first.
    fn billing(&self, seed: u64) -> String {
        #[derive(Serialize)]
        struct Customer<'a> {
            id: String,
            object: &'static str,
            email: Option<String>,
            name: String,
            phone: Option<String>,
            address: Option<BillingAddress<'a>>,
            metadata: Metadata<'a>,
            created: i64,
            updated: i64,
        }
        #[derive(Serialize)]
        struct BillingAddress<'a> {
            line1: String,
            city: &'a str,
            postal_code: &'a str,
            country: &'a str,
        }
        #[derive(Serialize)]
        struct Metadata<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            crm_id: Option<&'a str>,
            plan: &'a str,
        }

        let mut r = Rng::stream(seed, "billing");
        let billed = self.people_where(|p| p.in_billing);
        let mut pool = billed.clone();
        r.shuffle(&mut pool);
        let noemail: BTreeSet<usize> = pool[..4].iter().copied().collect();
        let mut ids = BTreeSet::new();
        let mut rows: Vec<(i64, String)> = Vec::new();
        for &i in &billed {
            let p = &self.people[i];
            let id = loop {
                let id = format!("cus_{}", r.chars(BASE62, 14));
                if ids.insert(id.clone()) {
                    break id;
                }
            };
            let created = r.range(unix(2022, 1, 1), unix(2025, 3, 31));
            let updated = if r.chance(30) {
                created
            } else {
                r.range(created, unix(2025, 5, 31))
            };
            let email = if noemail.contains(&i) {
                Some("noemail@example.com".to_string())
            } else if r.chance(5) {
                None
            } else {
                let e = match &p.work_email {
                    Some(w) if r.chance(20) => w,
                    _ => &p.email,
                };
                Some(noisy_email(&mut r, e, 10, 0))
            };
            let name = match (r.below(20), p.nick) {
                (0..=6, _) => format!("{}, {}", p.family, p.given),
                (7..=8, Some(nick)) => format!("{nick} {}", p.family),
                _ => format!("{} {}", p.given, p.family),
            };
            let phone = if r.chance(15) {
                None
            } else if r.chance(55) {
                Some(format_phone(&p.phone, 5))
            } else {
                Some(format_phone(&p.phone, r.below(7)))
            };
            let address = (!r.chance(10)).then(|| {
                let line1 = p.street(r.chance(35));
                BillingAddress {
                    line1: if r.chance(10) {
                        line1.to_uppercase()
                    } else {
                        line1
                    },
                    city: p.city,
                    postal_code: p.postcode,
                    country: "US",
                }
            });
            let crm_id = p.crm_id.as_deref().filter(|_| r.chance(70));
            let customer = Customer {
                id,
                object: "customer",
                email,
                name,
                phone,
                address,
                metadata: Metadata {
                    crm_id,
                    plan: p.plan,
                },
                created,
                updated,
            };
            rows.push((
                created,
                serde_json::to_string(&customer).expect("customer serializes"),
            ));
        }
        rows.sort();
        let mut out = String::new();
        for (n, (_, line)) in rows.iter().enumerate() {
            if n == rows.len() / 2 {
                // A write cut short, then retried: the broken line goes to quarantine.
                let mut cut = line.len() * 3 / 5;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&line[..cut]);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn requester_name(r: &mut Rng, p: &Person) -> String {
        match r.below(20) {
            0..=13 => format!("{} {}", p.given, p.family),
            14..=15 => format!("{} {}", p.nick.unwrap_or(p.given), p.family),
            16 => format!("{} {}", p.given, p.family).to_lowercase(),
            17 => format!("{} {}", p.given, p.family).to_uppercase(),
            _ => p.given.to_string(),
        }
    }

    /// Zendesk-like tickets export.
    fn helpdesk(&self, seed: u64) -> String {
        struct Ticket {
            at: i64,
            name: String,
            email: String,
            subject: &'static str,
        }
        let mut r = Rng::stream(seed, "helpdesk");
        let (start, end) = (unix(2024, 10, 1), unix(2025, 5, 31));
        let mut tickets = Vec::new();
        for &i in &self.helpdesk {
            let p = &self.people[i];
            let n = 1 + usize::from(r.chance(35)) + usize::from(r.chance(15));
            for _ in 0..n {
                let email = match &p.work_email {
                    Some(w) if r.chance(30) => w,
                    _ => &p.email,
                };
                tickets.push(Ticket {
                    at: r.range(start, end),
                    email: noisy_email(&mut r, email, 15, 5),
                    name: Self::requester_name(&mut r, p),
                    subject: r.pick(SUBJECTS),
                });
            }
        }
        // Two people who typed the same placeholder address, and a ticket taken over the phone
        // with no email at all.
        let strangers = self.people_where(|p| p.calls_only);
        for (k, email) in ["noemail@example.com", "noemail@example.com", ""]
            .into_iter()
            .enumerate()
        {
            let p = &self.people[strangers[k]];
            tickets.push(Ticket {
                at: r.range(start, end),
                email: email.to_string(),
                name: format!("{} {}", p.given, p.family),
                subject: r.pick(SUBJECTS),
            });
        }
        tickets.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.email.cmp(&b.email)));

        let mut out = String::new();
        csv_line(
            &mut out,
            &[
                "ticket_id",
                "requester_name",
                "requester_email",
                "subject",
                "status",
                "created_at",
            ],
        );
        let broken = tickets.len() * 2 / 5;
        let mut id = 40_211;
        for (n, t) in tickets.iter().enumerate() {
            id += r.range(1, 3);
            let status = if t.at < unix(2025, 4, 1) {
                r.pick(&["solved", "closed", "closed"])
            } else {
                r.pick(TICKET_STATUSES)
            };
            let created = if r.chance(15) {
                rfc3339_offset(t.at, r.pick(&[-300, -360, -420, -480]))
            } else {
                rfc3339_utc(t.at)
            };
            let id = id.to_string();
            if n == broken {
                // An export glitch: the status column is missing from this row.
                csv_line(&mut out, &[&id, &t.name, &t.email, t.subject, &created]);
            } else {
                csv_line(
                    &mut out,
                    &[&id, &t.name, &t.email, t.subject, status, &created],
                );
            }
        }
        out
    }

    /// Phone-system call log.
    fn calls(&self, seed: u64) -> String {
        let mut r = Rng::stream(seed, "calls");
        let (first_day, last_day) = (unix(2025, 1, 6), unix(2025, 5, 30));
        let when = |r: &mut Rng| {
            let day = r.range(0, (last_day - first_day) / 86_400);
            first_day + day * 86_400 + r.range(14 * 3600, 23 * 3600 + 59 * 60)
        };
        let number = |r: &mut Rng, digits: &str| {
            let style = match r.below(20) {
                0..=10 => 5,
                11..=14 => 6,
                15..=16 => 0,
                17..=18 => 3,
                _ => 1,
            };
            format_phone(digits, style)
        };
        let mut calls: Vec<(i64, String)> = Vec::new();
        let mut known = self.people_where(|p| p.in_crm || p.in_billing);
        r.shuffle(&mut known);
        for &i in &known[..CALLERS] {
            for _ in 0..1 + r.below(3) {
                let at = when(&mut r);
                calls.push((at, number(&mut r, &self.people[i].phone)));
            }
        }
        // Callers no other system knows, the switchboard, and withheld numbers.
        for i in self.people_where(|p| p.calls_only) {
            let at = when(&mut r);
            calls.push((at, number(&mut r, &self.people[i].phone)));
        }
        for _ in 0..3 {
            let at = when(&mut r);
            calls.push((at, number(&mut r, &self.switchboard)));
        }
        for withheld in ["anonymous", ""] {
            calls.push((when(&mut r), withheld.to_string()));
        }
        calls.sort();

        let mut out = String::new();
        csv_line(
            &mut out,
            &[
                "call_id",
                "caller_number",
                "direction",
                "duration_seconds",
                "started_at",
                "agent",
            ],
        );
        let broken = calls.len() / 3;
        for (n, (at, caller)) in calls.iter().enumerate() {
            let id = format!("CA{}", r.chars(HEX, 32));
            let inbound = caller.is_empty() || caller == "anonymous" || r.chance(75);
            let missed = r.chance(10);
            let duration = if missed { 0 } else { r.range(15, 1800) };
            let agent = if missed && inbound {
                ""
            } else {
                r.pick(AGENTS)
            };
            let started = if n == broken {
                // Someone exported this row from a spreadsheet in local US format.
                let s = sql_datetime(*at);
                format!("{}/{}/{} {}", &s[5..7], &s[8..10], &s[..4], &s[11..16])
            } else {
                rfc3339_utc(*at)
            };
            csv_line(
                &mut out,
                &[
                    &id,
                    caller,
                    if inbound { "inbound" } else { "outbound" },
                    &duration.to_string(),
                    &started,
                    agent,
                ],
            );
        }
        out
    }
}
