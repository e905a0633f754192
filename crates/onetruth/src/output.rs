//! Human and JSON output for `show`, `lookup`, `stats` and `quarantine`.

use std::io::Write;

use onetruth_model::CustomerId;
use onetruth_resolve::Valued;
use onetruth_store::{CustomerProfile, Quarantined, Stats};

fn out() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::new(std::io::stdout().lock())
}

pub fn print_lookup(profiles: &[CustomerProfile], json: bool) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, profiles)?;
        writeln!(w)?;
        return Ok(());
    }
    for p in profiles {
        let name = p
            .golden
            .full_name
            .as_ref()
            .map(|v| v.value.as_str())
            .unwrap_or("(no name)");
        let sources: Vec<String> = p
            .records
            .iter()
            .map(|r| format!("{}:{}", r.source, r.source_id))
            .collect();
        writeln!(
            w,
            "{}\t{}\t{} records: {}",
            p.id,
            name,
            p.records.len(),
            sources.join(", ")
        )?;
    }
    Ok(())
}

fn prov<T>(v: &Valued<T>) -> String {
    format!(
        "{}:{} v{}",
        v.provenance.source, v.provenance.source_id, v.provenance.version
    )
}

pub fn print_profile(
    p: &CustomerProfile,
    alias: Option<CustomerId>,
    json: bool,
) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        let mut v = serde_json::to_value(p)?;
        if let (Some(a), Some(obj)) = (alias, v.as_object_mut()) {
            obj.insert(
                "requested_id".into(),
                serde_json::Value::String(a.to_string()),
            );
        }
        serde_json::to_writer_pretty(&mut w, &v)?;
        writeln!(w)?;
        return Ok(());
    }
    write!(w, "{}", p.id)?;
    if let Some(a) = alias {
        write!(w, " (you asked for {a}, merged into {})", p.id)?;
    }
    writeln!(w, "  version {}", p.version)?;
    if !p.aliases.is_empty() {
        let a: Vec<String> = p.aliases.iter().map(ToString::to_string).collect();
        writeln!(w, "aliases: {}", a.join(", "))?;
    }
    writeln!(w, "\ngolden profile")?;
    let g = &p.golden;
    let fields = [
        ("given_name", &g.given_name),
        ("family_name", &g.family_name),
        ("full_name", &g.full_name),
        ("birth_date", &g.birth_date),
        ("company", &g.company),
    ];
    for (name, v) in fields {
        if let Some(v) = v {
            writeln!(w, "  {name:<12} {:<32} {}", v.value, prov(v))?;
        }
    }
    if let Some(a) = &g.address {
        let parts: Vec<&str> = [
            &a.value.line1,
            &a.value.line2,
            &a.value.city,
            &a.value.region,
            &a.value.postal_code,
            &a.value.country,
        ]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .collect();
        writeln!(
            w,
            "  {:<12} {:<32} {}",
            "address",
            parts.join(", "),
            prov(a)
        )?;
    }
    for (k, v) in &g.traits {
        let text = match &v.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(w, "  {k:<12} {text:<32} {}", prov(v))?;
    }
    writeln!(w, "\nidentifiers")?;
    for id in &g.identifiers {
        let flag = if id.value.linkable {
            ""
        } else {
            "  (placeholder, not linked)"
        };
        writeln!(
            w,
            "  {:<9} {:<32} {}{flag}",
            id.value.kind.as_str(),
            id.value.value,
            prov(id)
        )?;
    }
    writeln!(w, "\nsource records ({})", p.records.len())?;
    for r in &p.records {
        let name = r.attributes.full_name.as_deref().unwrap_or("");
        writeln!(w, "  {}:{}  v{}  {name}", r.source, r.source_id, r.version)?;
        for f in &r.attributes.flagged {
            writeln!(w, "    flagged {}: {:?} ({})", f.kind, f.original, f.reason)?;
        }
    }
    if !p.events.is_empty() {
        writeln!(w, "\nrecent events")?;
        for e in &p.events {
            writeln!(
                w,
                "  {}  {:<8} {}:{}  {}",
                e.occurred_at, e.kind, e.source, e.source_id, e.data
            )?;
        }
    }
    Ok(())
}

pub fn print_stats(s: &Stats, json: bool) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, s)?;
        writeln!(w)?;
        return Ok(());
    }
    writeln!(w, "customers              {}", s.customers)?;
    writeln!(w, "aliases (merged ids)   {}", s.aliases)?;
    writeln!(w, "source records         {}", s.records)?;
    for (src, n) in &s.records_by_source {
        writeln!(w, "  {src:<20} {n}")?;
    }
    writeln!(w, "deleted records        {}", s.deleted_records)?;
    writeln!(w, "identifiers            {}", s.identifiers)?;
    writeln!(w, "  placeholders         {}", s.placeholder_identifiers)?;
    writeln!(w, "links (accepted)       {}", s.links)?;
    writeln!(w, "  refused by guards    {}", s.refused_links)?;
    writeln!(w, "  possible (review)    {}", s.possible_pairs)?;
    writeln!(w, "split customer ids     {}", s.split_customers)?;
    writeln!(w, "generic values         {}", s.generic_values.len())?;
    // The most widely shared first; the full list is in --json.
    let mut generic: Vec<_> = s.generic_values.iter().collect();
    generic.sort_by(|a, b| {
        b.records
            .cmp(&a.records)
            .then_with(|| a.value.cmp(&b.value))
    });
    for g in generic.iter().take(20) {
        writeln!(
            w,
            "  {:<30} {} names on {} records",
            g.value, g.names, g.records
        )?;
    }
    if generic.len() > 20 {
        writeln!(
            w,
            "  ... {} more (stats --json lists all)",
            generic.len() - 20
        )?;
    }
    writeln!(w, "blocking overflows     {}", s.blocking_overflows)?;
    for (k, n) in &s.largest_overflows {
        writeln!(w, "  {k:<30} {n} records")?;
    }
    writeln!(w, "matching               {}", s.matching.as_str())?;
    match &s.match_parameters {
        Some(p) => writeln!(w, "match parameters       #{} ({})", p.id, p.origin)?,
        None => writeln!(w, "match parameters       shipped defaults")?,
    }
    writeln!(w, "events                 {}", s.events)?;
    writeln!(w, "quarantined            {}", s.quarantined)?;
    writeln!(w, "changelog version      {}", s.changelog_version)?;
    for (connector, streams) in &s.checkpoints {
        for (stream, position) in streams {
            match stream.as_str() {
                "" => writeln!(w, "checkpoint {connector}: {position}")?,
                _ => writeln!(w, "checkpoint {connector} {stream}: {position}")?,
            }
        }
    }
    Ok(())
}

pub fn print_quarantine(rows: &[Quarantined], total: i64) -> anyhow::Result<()> {
    let mut w = out();
    for q in rows {
        writeln!(
            w,
            "{}  {}  {}\n  raw: {}",
            q.source, q.position, q.reason, q.raw
        )?;
    }
    if total == 0 {
        writeln!(w, "quarantine is empty")?;
    } else if (rows.len() as i64) < total {
        writeln!(
            w,
            "({} of {total} quarantined records shown; use --limit)",
            rows.len()
        )?;
    }
    Ok(())
}

/// `explain-pair`: how two records compare, what they score and what the resolver decided.
pub fn print_pair(p: &onetruth_store::PairExplanation, json: bool) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, p)?;
        writeln!(w)?;
        return Ok(());
    }
    write_pair(&mut w, p)
}

fn write_pair(w: &mut impl Write, p: &onetruth_store::PairExplanation) -> anyhow::Result<()> {
    let who = |r: &onetruth_store::RecordRef| {
        let c = r
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_else(|| "no customer".into());
        format!("{}:{} ({c})", r.source, r.source_id)
    };
    writeln!(w, "{}  vs  {}", who(&p.left), who(&p.right))?;
    writeln!(w, "  {:<17} {:<32} {:>8}", "field", "level", "weight")?;
    for c in &p.score.contributions {
        let tf = if c.tf_adjustment != 0.0 {
            format!("  (term frequency {:+.2})", c.tf_adjustment)
        } else {
            String::new()
        };
        writeln!(w, "  {:<17} {:<32} {:>8.2}{tf}", c.field, c.level, c.weight)?;
    }
    // The band's wire name (link / possible / no_link), as in --json.
    let band = serde_json::to_value(p.score.band)?;
    writeln!(
        w,
        "  {:<17} {:<32} {:>8.2}  probability {:.4}, band {}",
        "total",
        "",
        p.score.total_weight,
        p.score.probability,
        band.as_str().unwrap_or_default()
    )?;
    if !p.generic_values.is_empty() {
        writeln!(
            w,
            "  ignored generic values: {}",
            p.generic_values.join(", ")
        )?;
    }
    if !p.shared_identifiers.is_empty() {
        writeln!(
            w,
            "  shared identifiers: {}",
            p.shared_identifiers.join(", ")
        )?;
    }
    if p.matching == onetruth_resolve::Matching::Identifiers {
        writeln!(
            w,
            "  matching: identifiers (a shared identifier links the pair; the score is for reference)"
        )?;
    }
    writeln!(
        w,
        "  decision: {}",
        p.decision
            .as_deref()
            .unwrap_or("not kept (not candidates, or below possible)")
    )?;
    Ok(())
}

/// `explain CUSTOMER_ID`: every link inside the customer and every refused one.
pub fn print_explanation(
    e: &onetruth_store::CustomerExplanation,
    json: bool,
) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, e)?;
        writeln!(w)?;
        return Ok(());
    }
    writeln!(w, "{}: {} records", e.id, e.records.len())?;
    for r in &e.records {
        writeln!(w, "  {}:{}", r.source, r.source_id)?;
    }
    writeln!(w, "\nlinks inside ({}):", e.links.len())?;
    for p in &e.links {
        write_pair(&mut w, p)?;
    }
    writeln!(w, "\nrefused or possible links ({}):", e.refused.len())?;
    for p in &e.refused {
        write_pair(&mut w, p)?;
    }
    Ok(())
}

/// `train`: the report and, per field and level, the old and new m, u and weight.
pub fn print_training(t: &onetruth_store::TrainingOutcome, json: bool) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, t)?;
        writeln!(w)?;
        return Ok(());
    }
    let r = &t.report;
    writeln!(
        w,
        "{} random pairs (u), {} candidate pairs (m by EM, {} iterations, {}); {:.1}% of candidates estimated to match",
        r.random_pairs,
        r.candidate_pairs,
        r.iterations,
        if r.converged {
            "converged"
        } else {
            "not converged"
        },
        r.candidate_match_share * 100.0
    )?;
    writeln!(
        w,
        "  {:<13} {:<30} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "field", "level", "m", "new m", "new u", "weight", "new"
    )?;
    for (field, levels) in &t.params.fields {
        for (level, p) in levels {
            let old = t.previous.level(field, level);
            writeln!(
                w,
                "  {:<13} {:<30} {:>8.4} {:>8.4} {:>10.2e} {:>8.2} {:>8.2}",
                field,
                level,
                old.map_or(f64::NAN, |o| o.m),
                p.m,
                p.u,
                old.map_or(f64::NAN, |o| o.weight()),
                p.weight()
            )?;
        }
    }
    match t.id {
        Some(id) => writeln!(w, "saved as match parameters #{id} (active)")?,
        None => writeln!(w, "dry run: nothing saved")?,
    }
    Ok(())
}

/// `possible`: pairs kept for review.
pub fn print_possible(rows: &[onetruth_store::PossibleMatch], json: bool) -> anyhow::Result<()> {
    let mut w = out();
    if json {
        serde_json::to_writer_pretty(&mut w, rows)?;
        writeln!(w)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(w, "no possible matches to review")?;
        return Ok(());
    }
    let who = |r: &onetruth_store::RecordRef| {
        let c = r
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        format!("{}:{} ({c})", r.source, r.source_id)
    };
    for p in rows {
        writeln!(w, "{:>7.2}  {}  {}", p.weight, who(&p.left), who(&p.right))?;
    }
    writeln!(
        w,
        "explain with `onetruth explain-pair`, decide with `onetruth curate force-merge|never-merge`"
    )?;
    Ok(())
}
