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

const MOST_RECENT: &str = "most_recent";

/// Compute the golden profile of the records of one customer.
pub fn golden(records: &[RecordView]) -> Golden {
    // Most recent first; the order is total, so the result does not depend on input order.
    let mut order: Vec<&RecordView> = records.iter().collect();
    order.sort_by(|a, b| {
        b.version
            .cmp(&a.version)
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.source_id.cmp(&b.source_id))
    });
    let prov = |r: &RecordView| Provenance {
        source: r.source.clone(),
        source_id: r.source_id.clone(),
        version: r.version,
        rule: MOST_RECENT.to_string(),
    };
    fn pick<T: Clone>(
        order: &[&RecordView],
        prov: &dyn Fn(&RecordView) -> Provenance,
        get: impl Fn(&Attributes) -> Option<T>,
    ) -> Option<Valued<T>> {
        order.iter().find_map(|r| {
            get(&r.attributes).map(|value| Valued {
                value,
                provenance: prov(r),
            })
        })
    }
    let mut g = Golden {
        given_name: pick(&order, &prov, |a| a.given_name.clone()),
        family_name: pick(&order, &prov, |a| a.family_name.clone()),
        full_name: pick(&order, &prov, |a| a.full_name.clone()),
        birth_date: pick(&order, &prov, |a| a.birth_date.clone()),
        company: pick(&order, &prov, |a| a.company.clone()),
        address: pick(&order, &prov, |a| a.addresses.first().cloned()),
        ..Golden::default()
    };
    for r in &order {
        for (k, v) in &r.attributes.traits {
            g.traits.entry(k.clone()).or_insert_with(|| Valued {
                value: v.clone(),
                provenance: prov(r),
            });
        }
        for id in &r.identifiers {
            if !g
                .identifiers
                .iter()
                .any(|x| x.value.kind == id.kind && x.value.value == id.value)
            {
                g.identifiers.push(Valued {
                    value: id.clone(),
                    provenance: prov(r),
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
