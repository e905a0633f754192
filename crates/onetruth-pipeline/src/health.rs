//! What `/readyz` and `/metrics` say about connectors: each one's state, set by its thread.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A connector's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorState {
    /// Polling its source.
    Running,
    /// Its source failed in a way that may pass; backing off (the error, without record
    /// content).
    Retrying(String),
    /// Stopped on an error that retrying cannot mend.
    Failed(String),
    /// Stopped: its source ended or the pipeline was told to stop.
    Stopped,
}

impl ConnectorState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectorState::Running => "running",
            ConnectorState::Retrying(_) => "retrying",
            ConnectorState::Failed(_) => "failed",
            ConnectorState::Stopped => "stopped",
        }
    }
}

/// Every connector's state, shared between the pipeline and the API.
#[derive(Debug, Default)]
pub struct Health {
    connectors: Mutex<BTreeMap<String, ConnectorState>>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    pub fn set(&self, connector: &str, state: ConnectorState) {
        let gauge = |s: &ConnectorState, v: f64| {
            metrics::gauge!("onetruth_connector_up", "connector" => connector.to_string(), "state" => s.as_str())
                .set(v)
        };
        let mut map = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = map.get(connector) {
            gauge(old, 0.0);
        }
        gauge(&state, 1.0);
        map.insert(connector.to_string(), state);
    }

    pub fn state(&self, connector: &str) -> Option<ConnectorState> {
        self.connectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(connector)
            .cloned()
    }

    /// Every connector and its state.
    pub fn snapshot(&self) -> BTreeMap<String, ConnectorState> {
        self.connectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
