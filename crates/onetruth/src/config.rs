//! Daemon configuration: a TOML file plus `ONETRUTH__SECTION__KEY` environment overrides,
//! parsed into [`RawConfig`] and validated into [`Config`], reporting every error at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use onetruth_model::{IdentifierKind, Normalizer, PhoneRegion};
use onetruth_resolve::{
    IdentifierPolicy, Matching, ResolverConfig, SURVIVORSHIP_ATTRIBUTES, Survivorship,
    SurvivorshipRule,
};
use onetruth_store::StreamCommit;
use serde::Deserialize;

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub store: RawStore,
    pub identifiers: RawIdentifiers,
    pub api: RawApi,
    pub ingest: RawIngest,
    pub resolution: RawResolution,
    pub survivorship: RawSurvivorship,
    pub daemon: RawDaemon,
    /// Where the daemon publishes every customer change (a Kafka topic); none by default.
    pub change_feed: Option<onetruth_connector_kafka::PublishParams>,
}

/// `[daemon]`: what `onetruth run` runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDaemon {
    /// Connector manifests to run, relative to the config file's directory.
    pub connectors: Vec<PathBuf>,
    /// A live transaction commits once its oldest batch was written this many milliseconds
    /// ago (default 0: every live group as soon as it is written): how long a change may wait
    /// to become visible. A backlog still commits in large groups (`ingest.commit_records`).
    pub commit_interval_ms: Option<u64>,
    /// On SIGTERM / SIGINT, how long to wait for in-flight batches to commit before exiting
    /// anyway, in milliseconds (default 30000).
    pub drain_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Path of the SQLite file (default `./onetruth.db`; `--db` wins).
    pub path: Option<PathBuf>,
    /// SQLite page cache per connection, MiB (default 256).
    pub cache_mib: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentifiers {
    /// Region for phone numbers without a country code, ISO 3166 alpha-2 (default `US`).
    pub default_region: Option<String>,
    /// Custom identifier kinds manifests may use, e.g. `["loyalty_card"]`.
    pub custom_kinds: Vec<String>,
    /// Extra placeholder values that never link: `kind:value`, `email:local@*`, `email:*@domain`.
    pub blocklist: Vec<String>,
    /// Include the shipped placeholder list (default true).
    pub default_blocklist: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    /// Address the HTTP API listens on (default `127.0.0.1:7700`).
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    /// Records per read batch (default 5000).
    pub batch_size: Option<usize>,
    /// A bulk ingest commits once a transaction holds this many records (default 50,000).
    pub commit_records: Option<u64>,
    /// ... or once its first group was written this many milliseconds ago (default 1000; 0
    /// commits every group).
    pub commit_interval_ms: Option<u64>,
    /// When the store file does not exist, write it as a new file without a journal and move
    /// it into place when the ingest ends (default true): about a third less time and bytes
    /// written, but an interrupted first ingest leaves no store and starts over.
    pub initial_load: Option<bool>,
}

/// `[resolution]`: how records are matched and clustered. Every key is optional; the defaults
/// are [`ResolverConfig::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResolution {
    /// How pairs become links: `probabilistic` (scored field by field, default) or
    /// `identifiers` (a shared identifier alone links; nothing is scored).
    pub matching: Option<String>,
    /// A blocking key held by more records than this yields no candidates (default 25).
    pub max_block_size: Option<usize>,
    /// An identifier value held by records with more than this many different given names
    /// stops linking (default 3).
    pub generic_value_names: Option<usize>,
    /// Identifier kinds a customer holds at most one value of (default none).
    pub unique_kinds: Vec<String>,
    /// Clearly different birth dates veto a merge (default true).
    pub unique_birth_date: Option<bool>,
    /// Clearly different given names veto a merge (default true).
    pub unique_given_name: Option<bool>,
    /// Most distinct emails one customer may hold (default 10).
    pub max_emails: Option<usize>,
    /// Most distinct phones one customer may hold (default 10).
    pub max_phones: Option<usize>,
    /// Weight in bits of a shared external or custom identifier (default 20).
    pub identifier_weight: Option<f64>,
}

/// `[survivorship]`: how each golden value is chosen among a customer's records.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSurvivorship {
    /// Rule for attributes without their own: most_recent (default), source_priority,
    /// most_frequent or longest.
    pub default: Option<String>,
    /// Sources from most to least trusted, for source_priority.
    pub source_priority: Vec<String>,
    /// Rule per attribute: given_name, family_name, full_name, birth_date, company, address,
    /// traits.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub cache_mib: u32,
    pub normalizer: Normalizer,
    pub policy: IdentifierPolicy,
    pub listen: SocketAddr,
    pub batch_size: usize,
    pub commit: StreamCommit,
    /// See [`RawIngest::initial_load`].
    pub initial_load: bool,
    pub resolution: ResolverConfig,
    pub survivorship: Survivorship,
    pub daemon: DaemonConfig,
    /// `[change_feed]`, with the directory its `file:` references start from.
    pub change_feed: Option<(onetruth_connector_kafka::PublishParams, PathBuf)>,
}

/// Validated `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Manifest paths, resolved against the config file's directory.
    pub connectors: Vec<PathBuf>,
    pub commit: StreamCommit,
    pub drain_timeout: std::time::Duration,
}

impl Config {
    /// Load `file` (if any) plus environment overrides; `db` overrides `store.path`.
    pub fn load(file: Option<&Path>, db: Option<PathBuf>) -> anyhow::Result<Config> {
        let mut builder = config::Config::builder();
        if let Some(f) = file {
            if !f.exists() {
                bail!("config file {} does not exist", f.display());
            }
            builder = builder.add_source(config::File::from(f).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("ONETRUTH")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("identifiers.custom_kinds")
                .with_list_parse_key("identifiers.blocklist")
                .with_list_parse_key("resolution.unique_kinds")
                .with_list_parse_key("survivorship.source_priority")
                .with_list_parse_key("daemon.connectors")
                .try_parsing(true),
        );
        let origin = file
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "environment".into());
        let raw: RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .with_context(|| format!("config {origin}"))?;
        let base = file.and_then(Path::parent).map(Path::to_path_buf);
        raw.validate(db, base.as_deref())
            .map_err(|errors| anyhow::anyhow!("config {origin}: {}", errors.join("; ")))
    }
}

impl RawConfig {
    /// Check everything, collecting every error.
    /// `base`: the config file's directory, which relative connector paths start from.
    pub fn validate(self, db: Option<PathBuf>, base: Option<&Path>) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let region = match &self.identifiers.default_region {
            None => PhoneRegion::default(),
            Some(r) => r.parse().unwrap_or_else(|e| {
                errors.push(format!("identifiers.default_region: {e}"));
                PhoneRegion::default()
            }),
        };
        for k in &self.identifiers.custom_kinds {
            match IdentifierKind::parse(k) {
                Some(IdentifierKind::Custom(_)) => {}
                Some(_) => errors.push(format!(
                    "identifiers.custom_kinds: `{k}` is a built-in kind"
                )),
                None => errors.push(format!(
                    "identifiers.custom_kinds: `{k}` must be lowercase letters, digits and `_`"
                )),
            }
        }
        // Exact entries are normalized like the values they must match, so a blocked phone can
        // be written in any format; patterns (`email:local@*`) are taken as written.
        let normalizer = Normalizer::new(region, self.identifiers.custom_kinds.clone());
        let blocklist: Vec<String> = self
            .identifiers
            .blocklist
            .iter()
            .map(|entry| {
                normalize_block_entry(&normalizer, entry).unwrap_or_else(|e| {
                    errors.push(format!("identifiers.blocklist: `{entry}`: {e}"));
                    entry.clone()
                })
            })
            .collect();
        let policy = IdentifierPolicy::new(
            blocklist.iter().map(String::as_str),
            self.identifiers.default_blocklist.unwrap_or(true),
        )
        .unwrap_or_else(|errs| {
            errors.extend(
                errs.into_iter()
                    .map(|e| format!("identifiers.blocklist: {e}")),
            );
            IdentifierPolicy::default()
        });
        let listen_text = self.api.listen.as_deref().unwrap_or("127.0.0.1:7700");
        let listen = listen_text.parse().unwrap_or_else(|_| {
            errors.push(format!(
                "api.listen: `{listen_text}` is not an address like 127.0.0.1:7700"
            ));
            SocketAddr::from(([127, 0, 0, 1], 7700))
        });
        let batch_size = self.ingest.batch_size.unwrap_or(5000);
        if batch_size == 0 {
            errors.push("ingest.batch_size: must be at least 1".into());
        }
        let defaults = StreamCommit::default();
        let commit = StreamCommit {
            records: self.ingest.commit_records.unwrap_or(defaults.records),
            interval: self
                .ingest
                .commit_interval_ms
                .map_or(defaults.interval, std::time::Duration::from_millis),
        };
        if commit.records == 0 {
            errors.push("ingest.commit_records: must be at least 1".into());
        }
        let cache_mib = self.store.cache_mib.unwrap_or(256);
        let resolution = self.resolution.validate(&normalizer, &mut errors);
        let survivorship = self.survivorship.validate(&mut errors);
        let daemon = self.daemon.validate(commit, base, &mut errors);
        if let Some(feed) = &self.change_feed {
            if feed.brokers.trim().is_empty() {
                errors.push("change_feed.brokers: must not be empty".into());
            }
            if feed.topic.trim().is_empty() {
                errors.push("change_feed.topic: must not be empty".into());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            db: db
                .or(self.store.path)
                .unwrap_or_else(|| PathBuf::from("onetruth.db")),
            cache_mib,
            normalizer,
            policy,
            listen,
            batch_size,
            commit,
            initial_load: self.ingest.initial_load.unwrap_or(true),
            resolution,
            survivorship,
            daemon,
            change_feed: self.change_feed.map(|f| {
                (
                    f,
                    base.map(Path::to_path_buf)
                        .unwrap_or_else(|| PathBuf::from(".")),
                )
            }),
        })
    }
}

impl RawDaemon {
    fn validate(
        self,
        bulk: StreamCommit,
        base: Option<&Path>,
        errors: &mut Vec<String>,
    ) -> DaemonConfig {
        let interval = self.commit_interval_ms.unwrap_or(0);
        if interval > 60_000 {
            errors.push("daemon.commit_interval_ms: at most 60000".into());
        }
        let drain = self.drain_timeout_ms.unwrap_or(30_000);
        if drain == 0 {
            errors.push("daemon.drain_timeout_ms: must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.connectors {
            if !seen.insert(c) {
                errors.push(format!(
                    "daemon.connectors: `{}` is listed twice",
                    c.display()
                ));
            }
        }
        DaemonConfig {
            connectors: self
                .connectors
                .into_iter()
                .map(|c| match base {
                    Some(b) if c.is_relative() => b.join(c),
                    _ => c,
                })
                .collect(),
            commit: StreamCommit {
                records: bulk.records,
                interval: std::time::Duration::from_millis(interval),
            },
            drain_timeout: std::time::Duration::from_millis(drain),
        }
    }
}

impl RawSurvivorship {
    fn validate(self, errors: &mut Vec<String>) -> Survivorship {
        let parse = |key: &str, v: &str, errors: &mut Vec<String>| match v {
            "most_recent" => SurvivorshipRule::MostRecent,
            "source_priority" => SurvivorshipRule::SourcePriority,
            "most_frequent" => SurvivorshipRule::MostFrequent,
            "longest" => SurvivorshipRule::Longest,
            other => {
                errors.push(format!(
                        "{key}: unknown rule `{other}` (use most_recent, source_priority, most_frequent or longest)"
                    ));
                SurvivorshipRule::MostRecent
            }
        };
        let default = match &self.default {
            Some(v) => parse("survivorship.default", v, errors),
            None => SurvivorshipRule::MostRecent,
        };
        let mut attributes = std::collections::BTreeMap::new();
        for (attr, v) in &self.attributes {
            let key = format!("survivorship.attributes.{attr}");
            if !SURVIVORSHIP_ATTRIBUTES.contains(&attr.as_str()) {
                errors.push(format!(
                    "{key}: unknown attribute (use one of {})",
                    SURVIVORSHIP_ATTRIBUTES.join(", ")
                ));
                continue;
            }
            attributes.insert(attr.clone(), parse(&key, v, errors));
        }
        let uses_priority = default == SurvivorshipRule::SourcePriority
            || attributes
                .values()
                .any(|r| *r == SurvivorshipRule::SourcePriority);
        if uses_priority && self.source_priority.is_empty() {
            errors.push(
                "survivorship.source_priority: list the sources from most to least trusted to use source_priority".into(),
            );
        }
        Survivorship {
            default,
            source_priority: self.source_priority,
            attributes,
        }
    }
}

impl RawResolution {
    fn validate(self, normalizer: &Normalizer, errors: &mut Vec<String>) -> ResolverConfig {
        let d = ResolverConfig::default();
        let positive =
            |key: &str, v: Option<usize>, default: usize, errors: &mut Vec<String>| match v {
                Some(0) => {
                    errors.push(format!("resolution.{key}: must be at least 1"));
                    default
                }
                Some(n) => n,
                None => default,
            };
        for k in &self.unique_kinds {
            match IdentifierKind::parse(k) {
                Some(kind) if normalizer.is_declared(&kind) => {}
                _ => errors.push(format!(
                    "resolution.unique_kinds: `{k}` is not a built-in kind or one of identifiers.custom_kinds"
                )),
            }
        }
        let matching = match self.matching.as_deref() {
            None => d.matching,
            Some(m) => Matching::parse(m).unwrap_or_else(|| {
                errors.push(format!(
                    "resolution.matching: `{m}` is not `probabilistic` or `identifiers`"
                ));
                d.matching
            }),
        };
        let identifier_weight = self.identifier_weight.unwrap_or(d.identifier_weight);
        if !identifier_weight.is_finite() || identifier_weight < 0.0 {
            errors.push("resolution.identifier_weight: must be a finite number >= 0".into());
        }
        ResolverConfig {
            matching,
            max_block_size: positive(
                "max_block_size",
                self.max_block_size,
                d.max_block_size,
                errors,
            ),
            generic_value_names: positive(
                "generic_value_names",
                self.generic_value_names,
                d.generic_value_names,
                errors,
            ),
            unique_kinds: self.unique_kinds,
            unique_birth_date: self.unique_birth_date.unwrap_or(d.unique_birth_date),
            unique_given_name: self.unique_given_name.unwrap_or(d.unique_given_name),
            max_emails: positive("max_emails", self.max_emails, d.max_emails, errors),
            max_phones: positive("max_phones", self.max_phones, d.max_phones, errors),
            identifier_weight,
        }
    }
}

/// `kind:value` with the value normalized; entries with `*` and unknown kinds pass through for
/// the policy to judge.
fn normalize_block_entry(normalizer: &Normalizer, entry: &str) -> Result<String, String> {
    let Some((kind, value)) = entry.split_once(':') else {
        return Ok(entry.to_string());
    };
    match IdentifierKind::parse(kind.trim()) {
        Some(k)
            if !value.contains('*')
                && !value.trim().starts_with('/')
                && normalizer.is_declared(&k) =>
        {
            normalizer
                .normalize(&k, value, None)
                .map(|id| format!("{k}:{}", id.value))
                .map_err(|e| e.to_string())
        }
        _ => Ok(entry.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported_at_once() {
        let raw = RawConfig {
            identifiers: RawIdentifiers {
                default_region: Some("XX".into()),
                custom_kinds: vec!["email".into(), "Bad".into()],
                blocklist: vec!["nokind".into()],
                default_blocklist: None,
            },
            api: RawApi {
                listen: Some("nowhere".into()),
            },
            ingest: RawIngest {
                batch_size: Some(0),
                commit_records: Some(0),
                commit_interval_ms: None,
                initial_load: None,
            },
            ..Default::default()
        };
        let errors = raw.validate(None, None).unwrap_err();
        assert_eq!(errors.len(), 7, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("ingest.commit_records"))
        );
        assert!(errors[0].starts_with("identifiers.default_region"));
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("onetruth.toml");
        std::fs::write(&f, "[store]\npaht = \"x.db\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f), None).unwrap_err());
        assert!(err.contains("paht"), "{err}");
        assert!(err.contains("onetruth.toml"), "{err}");
    }

    #[test]
    fn blocked_phones_and_emails_are_normalized_like_values() {
        use onetruth_model::Identifier;
        let raw = RawConfig {
            identifiers: RawIdentifiers {
                blocklist: vec![
                    "phone:(415) 555-2671".into(),
                    "email: Front.Desk@Hotel.example ".into(),
                ],
                ..Default::default()
            },
            ..Default::default()
        };
        let c = raw.validate(None, None).unwrap();
        let id = |kind: IdentifierKind, v: &str| Identifier {
            kind,
            value: v.into(),
            original: v.into(),
            linkable: true,
        };
        assert!(
            c.policy
                .is_placeholder(&id(IdentifierKind::Phone, "+14155552671"))
        );
        assert!(
            c.policy
                .is_placeholder(&id(IdentifierKind::Email, "front.desk@hotel.example"))
        );
        let bad = RawConfig {
            identifiers: RawIdentifiers {
                blocklist: vec!["phone:not a number".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let errors = bad.validate(None, None).unwrap_err();
        assert!(errors[0].contains("phone:not a number"), "{errors:?}");
    }

    #[test]
    fn survivorship_and_resolution_sections_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("onetruth.toml");
        std::fs::write(
            &f,
            "[survivorship]\ndefault = \"source_priority\"\nsource_priority = [\"crm\"]\n\
             [survivorship.attributes]\ncompany = \"longest\"\n\
             [resolution]\nmax_block_size = 50\nunique_kinds = [\"email\"]\nmatching = \"identifiers\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), None).unwrap();
        assert_eq!(c.survivorship.default, SurvivorshipRule::SourcePriority);
        assert_eq!(
            c.survivorship.attributes["company"],
            SurvivorshipRule::Longest
        );
        assert_eq!(c.resolution.max_block_size, 50);
        assert_eq!(c.resolution.matching, Matching::Identifiers);
        std::fs::write(
            &f,
            "[survivorship]\ndefault = \"source_priority\"\n[survivorship.attributes]\nshoe = \"longest\"\ncompany = \"newest\"\n\
             [resolution]\nmax_block_size = 0\nunique_kinds = [\"shoe_size\"]\nmatching = \"fuzzy\"\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::load(Some(&f), None).unwrap_err());
        for want in [
            "survivorship.attributes.shoe",
            "survivorship.attributes.company: unknown rule `newest`",
            "survivorship.source_priority",
            "resolution.max_block_size",
            "resolution.unique_kinds",
            "resolution.matching: `fuzzy` is not `probabilistic` or `identifiers`",
        ] {
            assert!(err.contains(want), "{want} in {err}");
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/onetruth.example.toml");
        let c = Config::load(Some(&f), None).unwrap();
        assert_eq!(
            c.survivorship.source_priority,
            ["crm", "billing", "helpdesk"]
        );
        assert_eq!(c.resolution.max_block_size, 25);
        assert_eq!(c.resolution.matching, Matching::Probabilistic);
    }

    #[test]
    fn db_flag_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("onetruth.toml");
        std::fs::write(
            &f,
            "[store]\npath = \"a.db\"\n[identifiers]\ndefault_region = \"gb\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), Some("b.db".into())).unwrap();
        assert_eq!(c.db, PathBuf::from("b.db"));
        assert_eq!(c.normalizer.default_region(), "GB".parse().unwrap());
    }
}
