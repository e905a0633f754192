//! The golden profile: per attribute, the value from the most recent source record (highest
//! version; ties broken by source then source id so the choice is deterministic), each value
//! with its provenance. Computed from the records on read, so a split or a deleted record
//! restores the right values without any stored state to repair.

use std::collections::BTreeMap;

use onetruth_model::{Address, Attributes, Identifier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One source record as resolution sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub source: String,
    pub source_id: String,
    pub version: i64,
    pub identifiers: Vec<Identifier>,
    pub attributes: Attributes,
}

/// Where a golden value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    pub source: String,
    pub source_id: String,
    pub version: i64,
    /// The survivorship rule that chose the value.
    pub rule: String,
}

/// A value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Valued<T> {
    pub value: T,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// A customer's golden profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Golden {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<Valued<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<Valued<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<Valued<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<Valued<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<Valued<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Valued<Address>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, Valued<serde_json::Value>>,
    /// Every distinct identifier of the customer, each from the most recent record carrying it.
    pub identifiers: Vec<Valued<Identifier>>,
}

/// How one attribute's golden value is chosen among a customer's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurvivorshipRule {
    /// The value of the record with the highest version (ties: source, then source id).
    #[default]
    MostRecent,
    /// The value from the most trusted source in `source_priority`; unlisted sources rank
    /// after listed ones; most recent within a source.
    SourcePriority,
    /// The value most records agree on (compared case- and space-insensitively); ties go to
    /// the most recent.
    MostFrequent,
    /// The longest, most complete value (for addresses: most parts filled, then longest);
    /// ties go to the most recent.
    Longest,
}

impl SurvivorshipRule {
    pub fn as_str(self) -> &'static str {
        match self {
            SurvivorshipRule::MostRecent => "most_recent",
            SurvivorshipRule::SourcePriority => "source_priority",
            SurvivorshipRule::MostFrequent => "most_frequent",
            SurvivorshipRule::Longest => "longest",
        }
    }
}

/// The attributes survivorship rules can be set for.
pub const SURVIVORSHIP_ATTRIBUTES: &[&str] = &[
    "given_name",
    "family_name",
    "full_name",
    "birth_date",
    "company",
    "address",
    "traits",
];

/// Survivorship settings (`[survivorship]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Survivorship {
    /// The rule for attributes not listed in `attributes`.
    pub default: SurvivorshipRule,
    /// Sources from most to least trusted, for `source_priority`.
    pub source_priority: Vec<String>,
    /// A rule per attribute: given_name, family_name, full_name, birth_date, company, address,
    /// traits (every trait).
    pub attributes: BTreeMap<String, SurvivorshipRule>,
}

impl Survivorship {
    fn rule(&self, attribute: &str) -> SurvivorshipRule {
        self.attributes
            .get(attribute)
            .copied()
            .unwrap_or(self.default)
    }
}

/// What survivorship needs to know about a value: how to count it and how complete it is.
trait Survivable: Clone {
    /// Values with the same key count as one for `most_frequent`.
    fn frequency_key(&self) -> String;
    /// Larger is more complete, for `longest`.
    fn completeness(&self) -> (usize, usize);
}

impl Survivable for String {
    fn frequency_key(&self) -> String {
        self.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }
    fn completeness(&self) -> (usize, usize) {
        (self.trim().chars().count(), 0)
    }
}

impl Survivable for Address {
    fn frequency_key(&self) -> String {
        [
            &self.line1,
            &self.line2,
            &self.city,
            &self.region,
            &self.postal_code,
            &self.country,
        ]
        .iter()
        .map(|p| p.as_deref().unwrap_or("").to_string().frequency_key())
        .collect::<Vec<_>>()
        .join("|")
    }
    fn completeness(&self) -> (usize, usize) {
        let parts = [
            &self.line1,
            &self.line2,
            &self.city,
            &self.region,
            &self.postal_code,
            &self.country,
        ];
        let filled = parts.iter().filter(|p| p.is_some()).count();
        let len = parts
            .iter()
            .filter_map(|p| p.as_deref())
            .map(|p| p.chars().count())
            .sum();
        (filled, len)
    }
}

impl Survivable for serde_json::Value {
    fn frequency_key(&self) -> String {
        self.to_string()
    }
    fn completeness(&self) -> (usize, usize) {
        (self.to_string().chars().count(), 0)
    }
}

/// Choose a value among `candidates` (most recent first) by `rule`.
fn choose<T: Survivable>(
    candidates: Vec<(&RecordView, T)>,
    rule: SurvivorshipRule,
    rules: &Survivorship,
) -> Option<Valued<T>> {
    let rank = |source: &str| {
        rules
            .source_priority
            .iter()
            .position(|s| s == source)
            .unwrap_or(rules.source_priority.len())
    };
    // Every rule breaks ties by recency: `candidates` is most recent first, and `min_by_key`
    // / `max_by` below keep the first of equals.
    let pick = match rule {
        SurvivorshipRule::MostRecent => candidates.into_iter().next(),
        SurvivorshipRule::SourcePriority => candidates
            .into_iter()
            .enumerate()
            .min_by_key(|(i, (r, _))| (rank(&r.source), *i))
            .map(|(_, c)| c),
        SurvivorshipRule::MostFrequent => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (_, v) in &candidates {
                *counts.entry(v.frequency_key()).or_default() += 1;
            }
            let best = counts.values().copied().max().unwrap_or(0);
            candidates
                .into_iter()
                .find(|(_, v)| counts.get(&v.frequency_key()) == Some(&best))
        }
        SurvivorshipRule::Longest => {
            let best = candidates.iter().map(|(_, v)| v.completeness()).max();
            candidates
                .into_iter()
                .find(|(_, v)| Some(v.completeness()) == best)
        }
    };
    pick.map(|(r, value)| Valued {
        value,
        provenance: Provenance {
            source: r.source.clone(),
            source_id: r.source_id.clone(),
            version: r.version,
            rule: rule.as_str().to_string(),
        },
    })
}

/// Compute the golden profile of the records of one customer with the default rules (most
/// recent everywhere).
pub fn golden(records: &[RecordView]) -> Golden {
    golden_with(records, &Survivorship::default())
}

/// Compute the golden profile of the records of one customer: per attribute the value the
/// attribute's survivorship rule picks, with its provenance. Pure, and independent of input
/// order: candidates are ordered most recent first (highest version, then source, then source
/// id) before any rule looks at them.
pub fn golden_with(records: &[RecordView], rules: &Survivorship) -> Golden {
    let mut order: Vec<&RecordView> = records.iter().collect();
    order.sort_by(|a, b| {
        b.version
            .cmp(&a.version)
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.source_id.cmp(&b.source_id))
    });
    fn field<T: Survivable>(
        order: &[&RecordView],
        rules: &Survivorship,
        attribute: &str,
        get: impl Fn(&Attributes) -> Option<T>,
    ) -> Option<Valued<T>> {
        let candidates = order
            .iter()
            .filter_map(|r| get(&r.attributes).map(|v| (*r, v)))
            .collect();
        choose(candidates, rules.rule(attribute), rules)
    }
    let mut g = Golden {
        given_name: field(&order, rules, "given_name", |a| a.given_name.clone()),
        family_name: field(&order, rules, "family_name", |a| a.family_name.clone()),
        full_name: field(&order, rules, "full_name", |a| a.full_name.clone()),
        birth_date: field(&order, rules, "birth_date", |a| a.birth_date.clone()),
        company: field(&order, rules, "company", |a| a.company.clone()),
        address: field(&order, rules, "address", |a| a.addresses.first().cloned()),
        ..Golden::default()
    };
    let trait_keys: std::collections::BTreeSet<&String> = order
        .iter()
        .flat_map(|r| r.attributes.traits.keys())
        .collect();
    for key in trait_keys {
        if let Some(v) = field(&order, rules, "traits", |a| a.traits.get(key).cloned()) {
            g.traits.insert(key.clone(), v);
        }
    }
    for r in &order {
        for id in &r.identifiers {
            if !g
                .identifiers
                .iter()
                .any(|x| x.value.kind == id.kind && x.value.value == id.value)
            {
                g.identifiers.push(Valued {
                    value: id.clone(),
                    provenance: Provenance {
                        source: r.source.clone(),
                        source_id: r.source_id.clone(),
                        version: r.version,
                        rule: SurvivorshipRule::MostRecent.as_str().to_string(),
                    },
                });
            }
        }
    }
    g.identifiers
        .sort_by(|a, b| (&a.value.kind, &a.value.value).cmp(&(&b.value.kind, &b.value.value)));
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        source: &str,
        id: &str,
        version: i64,
        given: Option<&str>,
        company: Option<&str>,
    ) -> RecordView {
        RecordView {
            source: source.into(),
            source_id: id.into(),
            version,
            identifiers: vec![],
            attributes: Attributes {
                given_name: given.map(String::from),
                company: company.map(String::from),
                ..Default::default()
            },
        }
    }

    #[test]
    fn most_recent_value_wins_per_attribute_with_provenance() {
        let records = vec![
            rec("crm", "1", 10, Some("Jane"), Some("Acme")),
            rec("billing", "b1", 20, Some("Janet"), None),
        ];
        let g = golden(&records);
        let given = g.given_name.unwrap();
        assert_eq!(given.value, "Janet");
        assert_eq!(
            (given.provenance.source.as_str(), given.provenance.version),
            ("billing", 20)
        );
        // The newer record has no company, so the older one's value survives.
        assert_eq!(g.company.unwrap().provenance.source, "crm");
    }

    #[test]
    fn each_rule_picks_its_value_with_provenance() {
        let records = vec![
            rec("crm", "1", 10, Some("Jane"), Some("Acme Corporation")),
            rec("billing", "b1", 30, Some("Janet"), Some("Acme")),
            rec("helpdesk", "h1", 20, Some("jane"), None),
        ];
        let with = |default: SurvivorshipRule| {
            golden_with(
                &records,
                &Survivorship {
                    default,
                    source_priority: vec!["crm".into(), "helpdesk".into()],
                    ..Survivorship::default()
                },
            )
        };
        let g = with(SurvivorshipRule::MostRecent);
        assert_eq!(g.given_name.unwrap().value, "Janet");
        let g = with(SurvivorshipRule::SourcePriority);
        let given = g.given_name.unwrap();
        assert_eq!(
            (given.value.as_str(), given.provenance.rule.as_str()),
            ("Jane", "source_priority")
        );
        // "Jane" and "jane" agree; the most recent spelling of the winner is kept.
        let g = with(SurvivorshipRule::MostFrequent);
        let given = g.given_name.unwrap();
        assert_eq!(
            (given.value.as_str(), given.provenance.source.as_str()),
            ("jane", "helpdesk")
        );
        let g = with(SurvivorshipRule::Longest);
        assert_eq!(g.company.unwrap().value, "Acme Corporation");
        assert_eq!(g.given_name.unwrap().value, "Janet");
        // Per-attribute rules override the default.
        let g = golden_with(
            &records,
            &Survivorship {
                attributes: [("company".to_string(), SurvivorshipRule::Longest)].into(),
                ..Survivorship::default()
            },
        );
        assert_eq!(g.company.unwrap().value, "Acme Corporation");
        assert_eq!(g.given_name.unwrap().value, "Janet");
    }

    #[test]
    fn ties_are_deterministic_whatever_the_input_order() {
        let a = rec("billing", "1", 5, Some("A"), None);
        let b = rec("crm", "1", 5, Some("B"), None);
        let g1 = golden(&[a.clone(), b.clone()]);
        let g2 = golden(&[b, a]);
        assert_eq!(g1, g2);
        assert_eq!(
            g1.given_name.unwrap().value,
            "A",
            "tie broken by source name"
        );
    }
}
