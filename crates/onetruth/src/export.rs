//! `onetruth export`: stream customers, links or events as JSONL or CSV.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;
use onetruth_model::IdentifierKind;
use onetruth_store::{CustomerExport, Store};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum What {
    Customers,
    Links,
    Events,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

const CUSTOMER_COLUMNS: &[&str] = &[
    "customer_id",
    "version",
    "records",
    "given_name",
    "family_name",
    "full_name",
    "birth_date",
    "company",
    "emails",
    "phones",
    "external_ids",
    "address_line1",
    "address_city",
    "address_postal_code",
    "address_country",
];

fn customer_row(c: &CustomerExport) -> Vec<String> {
    let g = &c.golden;
    let s = |v: &Option<onetruth_resolve::Valued<String>>| {
        v.as_ref().map(|v| v.value.clone()).unwrap_or_default()
    };
    let ids = |k: IdentifierKind| {
        g.identifiers
            .iter()
            .filter(|i| i.value.kind == k && i.value.linkable)
            .map(|i| i.value.value.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    let a = g
        .address
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    vec![
        c.id.to_string(),
        c.version.to_string(),
        c.records.to_string(),
        s(&g.given_name),
        s(&g.family_name),
        s(&g.full_name),
        s(&g.birth_date),
        s(&g.company),
        ids(IdentifierKind::Email),
        ids(IdentifierKind::Phone),
        ids(IdentifierKind::External),
        a.line1.unwrap_or_default(),
        a.city.unwrap_or_default(),
        a.postal_code.unwrap_or_default(),
        a.country.unwrap_or_default(),
    ]
}

/// Export; returns the number of rows written.
pub fn export(
    store: &Store,
    what: What,
    format: Format,
    since: Option<i64>,
    output: Option<&Path>,
) -> anyhow::Result<u64> {
    let sink: Box<dyn Write> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 16, sink);
    let mut n = 0u64;
    match format {
        Format::Jsonl => {
            let mut line = |v: &dyn erased::Ser| -> anyhow::Result<()> {
                v.write(&mut w)?;
                w.write_all(b"\n")?;
                n += 1;
                Ok(())
            };
            match what {
                What::Customers => store.for_each_customer(since, |c| line(&c))?,
                What::Links => store.for_each_link(|l| line(&l))?,
                What::Events => store.for_each_event(|e| line(&e))?,
            }
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut w);
            match what {
                What::Customers => {
                    csv.write_record(CUSTOMER_COLUMNS)?;
                    store.for_each_customer(since, |c| -> anyhow::Result<()> {
                        csv.write_record(customer_row(&c))?;
                        n += 1;
                        Ok(())
                    })?;
                }
                What::Links => {
                    csv.write_record(["source", "source_id", "customer_id"])?;
                    store.for_each_link(|l| -> anyhow::Result<()> {
                        csv.write_record([l.source, l.source_id, l.customer_id.to_string()])?;
                        n += 1;
                        Ok(())
                    })?;
                }
                What::Events => {
                    csv.write_record([
                        "customer_id",
                        "kind",
                        "occurred_at",
                        "source",
                        "source_id",
                        "data",
                    ])?;
                    store.for_each_event(|e| -> anyhow::Result<()> {
                        csv.write_record([
                            e.customer_id.map(|c| c.to_string()).unwrap_or_default(),
                            e.event.kind,
                            e.event.occurred_at,
                            e.event.source,
                            e.event.source_id,
                            e.event.data.to_string(),
                        ])?;
                        n += 1;
                        Ok(())
                    })?;
                }
            }
            csv.flush()?;
        }
    }
    w.flush()?;
    Ok(n)
}

/// Serialize any row type through one closure.
mod erased {
    pub trait Ser {
        fn write(&self, w: &mut dyn std::io::Write) -> serde_json::Result<()>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn write(&self, w: &mut dyn std::io::Write) -> serde_json::Result<()> {
            serde_json::to_writer(w, self)
        }
    }
}
