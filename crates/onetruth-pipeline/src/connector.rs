//! A connector: its manifest, the mapper compiled from it and its transport, loaded and
//! validated together so a manifest's problems come as one list.

use std::path::{Path, PathBuf};

use onetruth_connect::{Manifest, Mapper, Registry, Transport};
use onetruth_model::Normalizer;

/// A manifest that cannot be used: every problem, each naming its key, and the file.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Manifest(#[from] onetruth_connect::ManifestError),
    #[error("manifest {path}: {}", .errors.join("; "))]
    Invalid { path: String, errors: Vec<String> },
}

/// A manifest loaded and validated against the config and the registered transports.
pub struct Connector {
    /// The connector's name: its manifest's `source`, under which its checkpoints are stored.
    pub name: String,
    pub manifest: Manifest,
    pub mapper: Mapper,
    pub transport: Transport,
    /// Where the manifest was read from, for messages.
    pub path: PathBuf,
}

impl Connector {
    pub fn load(
        path: &Path,
        registry: &Registry,
        normalizer: &Normalizer,
    ) -> Result<Connector, ConnectorError> {
        let manifest = Manifest::load(path)?;
        Self::from_manifest(manifest, path, registry, normalizer)
    }

    pub fn from_manifest(
        manifest: Manifest,
        path: &Path,
        registry: &Registry,
        normalizer: &Normalizer,
    ) -> Result<Connector, ConnectorError> {
        match (
            Mapper::new(&manifest, normalizer),
            registry.transport(manifest.transport.as_ref()),
        ) {
            (Ok(mapper), Ok(transport)) => Ok(Connector {
                name: manifest.source.clone(),
                manifest,
                mapper,
                transport,
                path: path.to_path_buf(),
            }),
            (mapper, transport) => {
                let mut errors = mapper.err().unwrap_or_default();
                errors.extend(transport.err().unwrap_or_default());
                Err(ConnectorError::Invalid {
                    path: path.display().to_string(),
                    errors,
                })
            }
        }
    }
}

/// The directory a manifest's relative paths start from.
pub fn base_dir(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
