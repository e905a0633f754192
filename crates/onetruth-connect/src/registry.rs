//! Transports by name. A transport crate implements [`TypedSourceFactory`] for its typed params
//! struct; one [`Registry::register`] line makes `type = "<name>"` usable in manifests. The
//! manifest's `transport` table is read into that struct (unknown keys rejected) and validated
//! when the manifest is loaded, with the mapping's errors in the same list.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::source::{CheckpointReader, RawBody, RecordMeta, Source, SourceError};

/// The transport a manifest without a `transport` table (or without `type`) uses.
pub const DEFAULT_TRANSPORT: &str = "file";

/// What a source is created with, besides its params.
#[derive(Clone)]
pub struct SourceContext {
    /// The connector's name (its manifest's `source`): what its checkpoints are stored under.
    pub connector: String,
    /// Where the connector's streams stand in the store.
    pub checkpoints: Arc<dyn CheckpointReader>,
    /// Files named on the command line (`onetruth ingest --connector M FILE...`): a file
    /// transport reads exactly these, once, instead of watching its inbox.
    pub files: Vec<PathBuf>,
    /// Where relative paths in the params start from: the manifest's directory.
    pub base_dir: PathBuf,
}

/// A transport's factory, typed by its params (Quickwit's `TypedSourceFactory`).
pub trait TypedSourceFactory: Send + Sync + 'static {
    /// The manifest's `transport` table without `type`, read strictly
    /// (`#[serde(deny_unknown_fields)]`, a `///` line per field: they become the schema).
    type Params: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The `type` that selects this transport.
    const TYPE: &'static str;

    /// Checks serde cannot make (ranges, combinations), every problem at once, each starting
    /// with the key it is about (`transport.topics: ...`).
    fn validate(&self, _params: &Self::Params) -> Vec<String> {
        Vec::new()
    }

    /// A source reading what the params describe.
    fn create(
        &self,
        params: &Self::Params,
        ctx: SourceContext,
    ) -> Result<Box<dyn Source>, SourceError>;

    /// A quarantined record's raw payload read again, for `onetruth quarantine replay`: by
    /// default a JSON object's text, and anything else stays malformed with its old `reason`.
    /// A transport whose payloads need decoding (a Debezium envelope) decodes them again,
    /// with what it knew of the record then (a delete, a version) as its meta.
    fn replay(&self, _params: &Self::Params, raw: &str, reason: &str) -> Replayed {
        Replayed {
            body: replay_json(raw, reason),
            meta: None,
        }
    }
}

/// A quarantined record read again ([`TypedSourceFactory::replay`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub body: RawBody,
    pub meta: Option<Box<RecordMeta>>,
}

/// [`TypedSourceFactory::replay`]'s default: JSON object text is mapped again; anything else
/// (a CSV row that had the wrong number of fields) stays malformed with its old reason.
pub fn replay_json(raw: &str, reason: &str) -> RawBody {
    if raw.trim_start().starts_with('{') {
        RawBody::Json(raw.to_string())
    } else {
        RawBody::Malformed {
            text: raw.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// [`TypedSourceFactory`] with the params type erased, for the registry.
trait SourceFactory: Send + Sync {
    fn parse(&self, table: Value) -> Result<Arc<dyn Any + Send + Sync>, Vec<String>>;
    fn create(
        &self,
        params: &(dyn Any + Send + Sync),
        ctx: SourceContext,
    ) -> Result<Box<dyn Source>, SourceError>;
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
    fn replay(&self, params: &(dyn Any + Send + Sync), raw: &str, reason: &str) -> Replayed;
}

impl<F: TypedSourceFactory> SourceFactory for F {
    fn parse(&self, table: Value) -> Result<Arc<dyn Any + Send + Sync>, Vec<String>> {
        let params: F::Params =
            serde_json::from_value(table).map_err(|e| vec![format!("transport: {e}")])?;
        let errors = self.validate(&params);
        if errors.is_empty() {
            Ok(Arc::new(params))
        } else {
            Err(errors)
        }
    }

    fn create(
        &self,
        params: &(dyn Any + Send + Sync),
        ctx: SourceContext,
    ) -> Result<Box<dyn Source>, SourceError> {
        let params = params
            .downcast_ref::<F::Params>()
            .ok_or_else(|| SourceError::new(F::TYPE, "params of another transport"))?;
        TypedSourceFactory::create(self, params, ctx)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<F::Params>()
    }

    fn replay(&self, params: &(dyn Any + Send + Sync), raw: &str, reason: &str) -> Replayed {
        match params.downcast_ref::<F::Params>() {
            Some(p) => TypedSourceFactory::replay(self, p, raw, reason),
            None => Replayed {
                body: replay_json(raw, reason),
                meta: None,
            },
        }
    }
}

/// Every transport the build knows, by `type`.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn SourceFactory>>,
}

/// A manifest's transport, read and validated: which factory, with which params.
#[derive(Clone)]
pub struct Transport {
    kind: &'static str,
    params: Arc<dyn Any + Send + Sync>,
    factory: Arc<dyn SourceFactory>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("type", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// The transport's `type`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The typed params, when they are `P`'s.
    pub fn params<P: 'static>(&self) -> Option<&P> {
        self.params.downcast_ref()
    }

    /// A source for the connector.
    pub fn create(&self, ctx: SourceContext) -> Result<Box<dyn Source>, SourceError> {
        self.factory.create(self.params.as_ref(), ctx)
    }

    /// A quarantined record's raw payload read again (see [`TypedSourceFactory::replay`]).
    pub fn replay(&self, raw: &str, reason: &str) -> Replayed {
        self.factory.replay(self.params.as_ref(), raw, reason)
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Make `F::TYPE` usable in manifests. A second factory for the same type replaces the
    /// first.
    pub fn register<F: TypedSourceFactory>(&mut self, factory: F) -> &mut Registry {
        self.factories.insert(F::TYPE, Arc::new(factory));
        self
    }

    /// The registered types, sorted.
    pub fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }

    /// Read a manifest's `transport` value (absent: the file transport with its defaults).
    /// Errors name the key.
    pub fn transport(&self, value: Option<&Value>) -> Result<Transport, Vec<String>> {
        let mut table = match value {
            None => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(vec!["transport: must be a table".into()]),
        };
        let kind = match table.remove("type") {
            None => DEFAULT_TRANSPORT.to_string(),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(vec![format!(
                    "transport.type: must be a string, not {other}"
                )]);
            }
        };
        let Some((&kind, factory)) = self.factories.get_key_value(kind.as_str()) else {
            let known: Vec<_> = self.types().map(|t| format!("`{t}`")).collect();
            return Err(vec![format!(
                "transport.type: unknown transport `{kind}` (known: {})",
                known.join(", ")
            )]);
        };
        let params = factory.parse(Value::Object(table))?;
        Ok(Transport {
            kind,
            params,
            factory: factory.clone(),
        })
    }

    /// The JSON Schema of a manifest's `transport` table: one alternative per registered type.
    pub fn transport_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let alternatives: Vec<Value> = self
            .factories
            .iter()
            .map(|(kind, factory)| {
                let params = factory.schema(generator);
                // The params struct rejects unknown keys, so `type` goes into its own
                // definition rather than beside it.
                let name = params
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.rsplit('/').next())
                    .map(str::to_string);
                if let Some(def) = name
                    .and_then(|n| generator.definitions_mut().get_mut(&n))
                    .and_then(Value::as_object_mut)
                {
                    let description = format!("`{kind}`");
                    if let Some(Value::Object(props)) = def.get_mut("properties") {
                        props.insert(
                            "type".into(),
                            serde_json::json!({ "const": kind, "description": description }),
                        );
                    }
                    if *kind != DEFAULT_TRANSPORT {
                        match def.get_mut("required") {
                            Some(Value::Array(r)) => r.insert(0, "type".into()),
                            _ => {
                                def.insert("required".into(), serde_json::json!(["type"]));
                            }
                        }
                    }
                }
                params.to_value()
            })
            .collect();
        schemars::json_schema!({
            "description": "How records are read: `type` picks the transport (default `file`); the other keys are that transport's settings.",
            "anyOf": alternatives
        })
    }
}
