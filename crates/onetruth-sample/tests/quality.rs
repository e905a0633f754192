//! The quality benchmark: deterministic generation, trap and noise classes at their rates,
//! identifiers that normalize, manifests that map every record, and a scorer that is right on
//! hand-made cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use onetruth_connect::{Manifest, Mapper};
use onetruth_connector_file::{FileParams, FileSource};
use onetruth_model::{IdentifierKind, Normalizer, SourceRecord};
use onetruth_sample::{
    LinkRow, NOISE_RATES, QUALITY_DATA_FILES, QUALITY_SEED, QualitySummary, TRAP_RATES, TrapClass,
    TruthRow, quality_files, read_links, read_truth, score, write_quality,
};

const PEOPLE: usize = 4_000;

fn file<'a>(files: &'a [onetruth_sample::QualityFile], name: &str) -> &'a str {
    &files.iter().find(|f| f.name == name).unwrap().contents
}

#[test]
fn generation_is_deterministic() {
    let (a, sa) = quality_files(1_500, QUALITY_SEED);
    let (b, sb) = quality_files(1_500, QUALITY_SEED);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let names: Vec<&str> = a.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "crm.csv",
            "billing.jsonl",
            "helpdesk.csv",
            "phone.csv",
            "truth.csv",
            "crm.toml",
            "billing.toml",
            "helpdesk.toml",
            "phone.toml"
        ]
    );
    let (c, _) = quality_files(1_500, QUALITY_SEED + 1);
    for (x, y) in a.iter().zip(&c) {
        if x.name.ends_with(".toml") {
            assert_eq!(x.contents, y.contents);
        } else {
            assert_ne!(x.contents, y.contents, "{}", x.name);
        }
    }
}

fn truth_of(files: &[onetruth_sample::QualityFile]) -> Vec<TruthRow> {
    read_truth(file(files, "truth.csv")).unwrap()
}

/// Binomial tolerance: four standard deviations plus half a point.
fn close(observed: u64, n: u64, permille: u32) -> bool {
    let p = f64::from(permille) / 1000.0;
    let share = observed as f64 / n as f64;
    let sigma = (p * (1.0 - p) / n as f64).sqrt();
    (share - p).abs() <= 4.0 * sigma + 0.005
}

#[test]
fn every_class_is_present_at_its_rate() {
    let (files, summary) = quality_files(PEOPLE, QUALITY_SEED);
    let truth = truth_of(&files);
    let people: BTreeSet<&str> = truth.iter().map(|t| t.person.as_str()).collect();
    // Everyone appears at least once (a person in no system would not exist for anyone).
    assert_eq!(people.len(), PEOPLE);
    let per_person = truth.len() as f64 / PEOPLE as f64;
    assert!(
        (2.3..2.7).contains(&per_person),
        "{per_person} records/person"
    );
    assert_eq!(summary.records, truth.len() as u64);

    // 1-4 sources per person, sometimes twice in one source.
    let mut sources: HashMap<&str, BTreeMap<&str, usize>> = HashMap::new();
    for t in &truth {
        *sources
            .entry(&t.person)
            .or_default()
            .entry(&t.source)
            .or_default() += 1;
    }
    assert!(sources.values().all(|s| (1..=4).contains(&s.len())));
    for k in 1..=4 {
        assert!(sources.values().any(|s| s.len() == k), "{k} sources");
    }
    assert!(sources.values().any(|s| s.values().any(|&n| n > 1)));
    // Bridging happened, and for a small share of the records.
    assert!(summary.bridged > 0 && summary.bridged < summary.records / 10);

    // Trap classes: share of people, from the truth file.
    for (i, class) in TrapClass::ALL.into_iter().enumerate() {
        let members: BTreeSet<&str> = truth
            .iter()
            .filter(|t| t.trap == Some(class))
            .map(|t| t.person.as_str())
            .collect();
        let want = PEOPLE as f64 * f64::from(TRAP_RATES[i].permille) / 1000.0;
        assert!(
            (members.len() as f64 - want).abs() <= 3.0,
            "{}: {} people, want {want}",
            class.as_str(),
            members.len()
        );
        let groups: BTreeSet<&str> = truth
            .iter()
            .filter(|t| t.trap == Some(class))
            .map(|t| t.group.as_str())
            .collect();
        assert!(groups.len() >= 2, "{}", class.as_str());
    }
    // Noise classes at their configured rates. Bridging (see BRIDGING) fills some fields that
    // were drawn missing, so a "missing" share may come out a few points under its rate.
    assert_eq!(summary.noise.len(), NOISE_RATES.len());
    for n in &summary.noise {
        assert!(n.eligible >= 200, "{}: only {} drawn", n.name, n.eligible);
        let filled = n.name.ends_with(" missing")
            && n.affected as f64 / n.eligible as f64 >= f64::from(n.permille) / 1000.0 - 0.07;
        assert!(
            filled || close(n.affected, n.eligible, n.permille),
            "{}: {} of {} against {}‰",
            n.name,
            n.affected,
            n.eligible,
            n.permille
        );
    }
}

/// Every generated record, mapped through the shipped manifests, with its truth row.
fn mapped(dir: &Path, summary: &QualitySummary) -> Vec<(SourceRecord, TruthRow)> {
    let truth = read_truth(&std::fs::read_to_string(dir.join("truth.csv")).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut rows = truth.into_iter();
    for (k, (data, manifest)) in QUALITY_DATA_FILES.into_iter().enumerate() {
        let manifest = Manifest::load(&dir.join(manifest)).unwrap();
        let mapper = Mapper::new(&manifest, &Normalizer::default()).unwrap();
        let params = FileParams::from_manifest(manifest.transport.as_ref()).unwrap();
        let mut source = FileSource::open(&dir.join(data), &params).unwrap();
        let mut n = 0;
        loop {
            let batch = source.read(1024).unwrap();
            if batch.is_empty() {
                break;
            }
            for raw in batch {
                let record = mapper
                    .map(&raw, 0)
                    .unwrap_or_else(|e| panic!("{data} {}: {e:?}", raw.position.0));
                let t = rows.next().expect("a truth row per record");
                assert_eq!(
                    (record.source.as_str(), record.source_id.as_str()),
                    (t.source.as_str(), t.source_id.as_str())
                );
                assert!(record.version > 0, "{data}: a version");
                out.push((record, t));
                n += 1;
            }
        }
        assert_eq!(n, summary.records_per_file[k].1, "{data}");
    }
    assert!(rows.next().is_none(), "truth has no extra rows");
    out
}

#[test]
fn manifests_map_every_record_and_identifiers_normalize() {
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = write_quality(dir.path(), PEOPLE, QUALITY_SEED).unwrap();
    let records = mapped(dir.path(), &summary);
    assert_eq!(records.len() as u64, summary.records);

    let mut with_birth = 0;
    let mut values: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (r, t) in &records {
        // Only placeholder records carry values that do not normalize (n/a, 0000000000...).
        if t.trap != Some(TrapClass::Placeholder) {
            assert!(
                r.attributes.flagged.is_empty(),
                "{}:{} flagged {:?}",
                r.source,
                r.source_id,
                r.attributes.flagged
            );
        }
        assert!(
            r.attributes.given_name.is_some(),
            "{}:{}",
            r.source,
            r.source_id
        );
        with_birth += usize::from(r.attributes.birth_date.is_some());
        assert!(
            r.identifiers
                .iter()
                .any(|i| i.kind == IdentifierKind::External),
            "every record carries its own system id"
        );
        for id in &r.identifiers {
            if id.kind == IdentifierKind::Phone {
                assert!(
                    id.value.starts_with("+1") && id.value.len() == 12,
                    "{}",
                    id.value
                );
            }
            if id.kind != IdentifierKind::External {
                values.entry(id.key()).or_default().insert(t.person.clone());
            }
        }
    }
    assert!(with_birth > records.len() / 4);

    // No accidental sharing: an email or phone held by two people is a trap value, and every
    // record carrying it is marked as a trap record.
    let shared: BTreeSet<&String> = values
        .iter()
        .filter(|(_, people)| people.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(!shared.is_empty());
    for (r, t) in &records {
        for id in &r.identifiers {
            if shared.contains(&id.key()) {
                assert!(
                    matches!(
                        t.trap,
                        Some(
                            TrapClass::Household | TrapClass::Switchboard | TrapClass::Placeholder
                        )
                    ),
                    "{} shared by different people in unmarked record {}:{}",
                    id.key(),
                    r.source,
                    r.source_id
                );
            }
        }
    }

    // Households and switchboards really share a value between their people; the under-merge
    // class really shares none; every placeholder record carries its placeholder.
    let mut group_values: HashMap<(TrapClass, &str), HashMap<String, BTreeSet<&str>>> =
        HashMap::new();
    let mut no_shared: HashMap<&str, Vec<BTreeSet<String>>> = HashMap::new();
    for (r, t) in &records {
        let keys: BTreeSet<String> = r
            .identifiers
            .iter()
            .filter(|i| i.kind != IdentifierKind::External)
            .map(|i| i.key())
            .collect();
        match t.trap {
            Some(c @ (TrapClass::Household | TrapClass::Switchboard)) => {
                for k in keys {
                    group_values
                        .entry((c, &t.group))
                        .or_default()
                        .entry(k)
                        .or_default()
                        .insert(&t.person);
                }
            }
            Some(TrapClass::NoSharedId) => no_shared.entry(&t.person).or_default().push(keys),
            Some(TrapClass::Placeholder) => {
                let (kind, text) = t.group.split_once(':').unwrap();
                // A JSONL record keeps its payload as the line's text; a CSV row as parsed.
                let payload: serde_json::Value = match &r.raw_text {
                    Some(line) => serde_json::from_str(line).unwrap(),
                    None => r.raw.clone(),
                };
                let raw = match kind {
                    "email" => payload.get("Email").or(payload.get("email")),
                    _ => payload
                        .get("Phone")
                        .or(payload.get("phone"))
                        .or(payload.get("phone_number")),
                };
                assert_eq!(raw.and_then(|v| v.as_str()), Some(text));
            }
            _ => {}
        }
    }
    for ((class, group), values) in &group_values {
        let people: BTreeSet<&str> = values.values().flatten().copied().collect();
        if people.len() > 1 {
            assert!(
                values.values().any(|p| p.len() > 1),
                "{} {group}: no value shared",
                class.as_str()
            );
        }
    }
    // Every person's records agree on something besides the name (an email up to Gmail's dots
    // and tags, a phone, the CRM id, a birth date, an address), so a matcher can reach them.
    // Birth-date typos may cut a few such links.
    let mut by_person: HashMap<&str, Vec<BTreeSet<String>>> = HashMap::new();
    for (r, t) in &records {
        let mut keys = BTreeSet::new();
        for id in &r.identifiers {
            let key = match id.kind {
                IdentifierKind::Email => match id.value.split_once('@') {
                    Some((local, "gmail.com")) => {
                        let local = local.split('+').next().unwrap_or(local).replace('.', "");
                        format!("email:{local}@gmail.com")
                    }
                    _ => id.key(),
                },
                IdentifierKind::External if !id.value.starts_with("salesforce:") => continue,
                _ => id.key(),
            };
            if t.trap != Some(TrapClass::Placeholder) || !shared.contains(&id.key()) {
                keys.insert(key);
            }
        }
        if let Some(b) = &r.attributes.birth_date {
            keys.insert(format!("birth:{b}"));
        }
        for a in &r.attributes.addresses {
            let number = a.line1.as_deref().and_then(|l| l.split(' ').next());
            if let (Some(n), Some(z)) = (number, &a.postal_code) {
                keys.insert(format!("address:{n} {z}"));
            }
        }
        by_person.entry(&t.person).or_default().push(keys);
    }
    let (mut multi, mut disconnected) = (0, 0);
    for recs in by_person.values().filter(|v| v.len() > 1) {
        multi += 1;
        let mut reached = recs[0].clone();
        let mut done = vec![false; recs.len()];
        done[0] = true;
        let mut grew = true;
        while grew {
            grew = false;
            for (i, keys) in recs.iter().enumerate() {
                if !done[i] && !keys.is_disjoint(&reached) {
                    reached.extend(keys.iter().cloned());
                    done[i] = true;
                    grew = true;
                }
            }
        }
        disconnected += usize::from(done.contains(&false));
    }
    assert!(
        disconnected * 200 <= multi,
        "{disconnected} of {multi} people have records agreeing with the rest on the name only"
    );

    assert!(!no_shared.is_empty());
    for (person, recs) in &no_shared {
        assert_eq!(recs.len(), 2, "{person}");
        assert!(
            recs[0].is_disjoint(&recs[1]),
            "{person} shares {:?}",
            recs[0].intersection(&recs[1])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scorer on hand-made cases.

fn t(source_id: &str, person: &str, trap: Option<TrapClass>, group: &str) -> TruthRow {
    TruthRow {
        source: "crm".into(),
        source_id: source_id.into(),
        person: person.into(),
        trap,
        group: group.into(),
    }
}

fn links(pairs: &[(&str, &str)]) -> Vec<LinkRow> {
    pairs
        .iter()
        .map(|(id, c)| LinkRow {
            source: "crm".into(),
            source_id: (*id).into(),
            customer: (*c).into(),
        })
        .collect()
}

/// A: 3 records, B: 2, C: 1. A and B are one household (a1 and b1 carry the shared value).
fn small_truth() -> Vec<TruthRow> {
    vec![
        t("a1", "A", Some(TrapClass::Household), "household-0"),
        t("a2", "A", None, ""),
        t("a3", "A", None, ""),
        t("b1", "B", Some(TrapClass::Household), "household-0"),
        t("b2", "B", None, ""),
        t("c1", "C", None, ""),
    ]
}

#[test]
fn perfect_clustering_scores_one() {
    let truth = small_truth();
    let s = score(
        &truth,
        &links(&[
            ("a1", "cus_1"),
            ("a2", "cus_1"),
            ("a3", "cus_1"),
            ("b1", "cus_2"),
            ("b2", "cus_2"),
            ("c1", "cus_3"),
        ]),
    );
    assert_eq!((s.records, s.people, s.predicted_clusters), (6, 3, 3));
    assert_eq!(
        (s.true_pairs, s.predicted_pairs, s.correct_pairs),
        (4, 4, 4)
    );
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
    assert_eq!(s.impure_clusters, 0);
    let h = &s.traps[0];
    assert_eq!(h.class, TrapClass::Household);
    assert_eq!(
        (
            h.groups,
            h.over_merged_groups,
            h.records,
            h.over_merged_records
        ),
        (1, 0, 2, 0)
    );
}

#[test]
fn one_big_cluster_has_precision_true_over_all_pairs() {
    let truth = small_truth();
    let all: Vec<(&str, &str)> = truth
        .iter()
        .map(|r| (r.source_id.as_str(), "cus_1"))
        .collect();
    let s = score(&truth, &links(&all));
    assert_eq!(s.predicted_pairs, 15);
    assert_eq!(s.precision, 4.0 / 15.0);
    assert_eq!(s.recall, 1.0);
    assert_eq!(
        (
            s.impure_clusters,
            s.largest_cluster_records,
            s.largest_cluster_people
        ),
        (1, 6, 3)
    );
    // The household is over-merged: both of its trap records share a customer with the other
    // member.
    let h = &s.traps[0];
    assert_eq!((h.over_merged_groups, h.group_rate), (1, 1.0));
    assert_eq!((h.over_merged_records, h.record_rate), (2, 1.0));
}

#[test]
fn singletons_have_recall_zero() {
    let truth = small_truth();
    let each: Vec<(&str, &str)> = truth
        .iter()
        .map(|r| (r.source_id.as_str(), r.source_id.as_str()))
        .collect();
    let s = score(&truth, &links(&each));
    assert_eq!((s.predicted_pairs, s.correct_pairs), (0, 0));
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 0.0, 0.0));
    // Missing links are singletons too; links to unknown records are counted and ignored.
    let s2 = score(&truth, &links(&[("zz", "cus_9")]));
    assert_eq!((s2.missing_from_links, s2.unknown_links), (6, 1));
    assert_eq!((s2.predicted_clusters, s2.recall), (6, 0.0));
}

#[test]
fn pair_counts_come_from_the_contingency_table() {
    // {a1 a2 b1} {a3 b2} {c1}: true 3+1, predicted 3+1, correct only a1-a2.
    let truth = small_truth();
    let s = score(
        &truth,
        &links(&[
            ("a1", "x"),
            ("a2", "x"),
            ("b1", "x"),
            ("a3", "y"),
            ("b2", "y"),
            ("c1", "z"),
        ]),
    );
    assert_eq!(
        (s.true_pairs, s.predicted_pairs, s.correct_pairs),
        (4, 4, 1)
    );
    assert_eq!((s.precision, s.recall), (0.25, 0.25));
    assert_eq!(s.impure_clusters, 2);
    assert_eq!(s.traps[0].over_merged_groups, 1);
}

#[test]
fn trap_groups_and_under_merge() {
    let truth = vec![
        // A switchboard of three; only S1 and S2 end up together.
        t("s1", "S1", Some(TrapClass::Switchboard), "switchboard-0"),
        t("s2", "S2", Some(TrapClass::Switchboard), "switchboard-0"),
        t("s3", "S3", Some(TrapClass::Switchboard), "switchboard-0"),
        // A placeholder value used by one person only: not a group that can over-merge.
        t(
            "p1",
            "P1",
            Some(TrapClass::Placeholder),
            "email:test@test.com",
        ),
        // Same name, kept apart.
        t("n1", "N1", Some(TrapClass::SameName), "same_name-0"),
        t("n2", "N2", Some(TrapClass::SameName), "same_name-0"),
        // Under-merge class: U is split, V is whole.
        t("u1", "U", Some(TrapClass::NoSharedId), "U"),
        t("u2", "U", Some(TrapClass::NoSharedId), "U"),
        t("v1", "V", Some(TrapClass::NoSharedId), "V"),
        t("v2", "V", Some(TrapClass::NoSharedId), "V"),
    ];
    let s = score(
        &truth,
        &links(&[
            ("s1", "c1"),
            ("s2", "c1"),
            ("s3", "c2"),
            ("p1", "c3"),
            ("n1", "c4"),
            ("n2", "c5"),
            ("u1", "c6"),
            ("u2", "c7"),
            ("v1", "c8"),
            ("v2", "c8"),
        ]),
    );
    let by: HashMap<TrapClass, &onetruth_sample::TrapScore> =
        s.traps.iter().map(|t| (t.class, t)).collect();
    let sb = by[&TrapClass::Switchboard];
    assert_eq!(
        (
            sb.groups,
            sb.over_merged_groups,
            sb.records,
            sb.over_merged_records
        ),
        (1, 1, 3, 2)
    );
    let ph = by[&TrapClass::Placeholder];
    assert_eq!((ph.groups, ph.records, ph.group_rate), (0, 0, 0.0));
    let sn = by[&TrapClass::SameName];
    assert_eq!((sn.groups, sn.over_merged_groups), (1, 0));
    assert_eq!(
        (
            s.under_merge.people,
            s.under_merge.split_people,
            s.under_merge.rate
        ),
        (2, 1, 0.5)
    );
    assert_eq!(s.generic_clusters, 1);
}

#[test]
fn truth_and_links_files_parse() {
    let truth = read_truth(
        "source,source_id,person_id,trap,trap_group\ncrm,\"a,1\",p1,household,household-3\nphone,9,p2,,\n",
    )
    .unwrap();
    assert_eq!(truth.len(), 2);
    assert_eq!(truth[0].source_id, "a,1");
    assert_eq!(truth[0].trap, Some(TrapClass::Household));
    assert_eq!(truth[1].trap, None);
    assert!(read_truth("source,source_id,person_id,trap\ncrm,1,p,bogus\n").is_err());
    assert!(read_truth("a,b\n").is_err());
    let links = read_links("source,source_id,customer_id\r\ncrm,\"a,1\",cus_4\r\n").unwrap();
    assert_eq!(links[0].customer, "cus_4");
    assert_eq!(links[0].source_id, "a,1");
}
