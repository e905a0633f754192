//! The HTTP read API. The only crate that knows the wire format.
//!
//! [`router`] builds the axum router so it can be tested in-process; the binary serves it.
//! Error bodies never echo identifier values back (they may be emails or phones).

mod feed;

pub use feed::{ChangeMessage, change_messages};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use onetruth_model::{CustomerId, IdentifierKind, Normalizer};
use onetruth_store::{
    CuratorDecision, CustomerProfile, Store, StoreError, StoreOptions, WriteCommand,
};
use serde::{Deserialize, Serialize};

/// Shared state: where the store is, a small pool of read-only connections, and the normalizer
/// used at ingest so a phone typed any way finds the same customer.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    db: PathBuf,
    options: StoreOptions,
    normalizer: Normalizer,
    pool: Mutex<Vec<Store>>,
}

impl ApiState {
    pub fn new(db: PathBuf, options: StoreOptions, normalizer: Normalizer) -> Self {
        let options = StoreOptions {
            read_only: true,
            ..options
        };
        ApiState {
            inner: Arc::new(Inner {
                db,
                options,
                normalizer,
                pool: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Run `f` with a pooled read connection. Queries take microseconds, so they run inline.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        let pooled = self.inner.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        let store = match pooled {
            Some(s) => s,
            None => {
                Store::open(&self.inner.db, self.inner.options.clone()).map_err(ApiError::store)?
            }
        };
        let out = f(&store).map_err(ApiError::store);
        if let Ok(mut p) = self.inner.pool.lock()
            && p.len() < 16
        {
            p.push(store);
        }
        out
    }
}

/// An error response: a status and a message safe to show a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// For a customer id that was split up: the customers its records went to.
    split_into: Vec<CustomerId>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            split_into: Vec::new(),
        }
    }

    fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "store query failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    split_into: Vec<CustomerId>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
                split_into: self.split_into,
            }),
        )
            .into_response()
    }
}

/// `GET /v1/customers/{id}`: the customer, with `requested_id` when the id was an alias.
#[derive(Serialize)]
pub struct CustomerResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_id: Option<CustomerId>,
    #[serde(flatten)]
    pub customer: CustomerProfile,
}

/// `GET /v1/lookup`: every customer holding the identifier.
#[derive(Serialize)]
pub struct LookupResponse {
    pub customers: Vec<CustomerProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    email: Option<String>,
    phone: Option<String>,
    external: Option<String>,
}

/// Build the router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/customers/{id}", get(get_customer))
        .route("/v1/customers/{id}/explain", get(explain_customer))
        .route("/v1/lookup", get(lookup))
        .with_state(state)
}

async fn get_customer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<CustomerResponse>, ApiError> {
    let id: CustomerId = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid customer id: expected cus_<number>",
        )
    })?;
    let found = state.with_store(|s| {
        let Some(resolved) = s.resolve(id)? else {
            return Ok(Err(s.split_into(id)?));
        };
        Ok(Ok(s.customer(resolved.id)?.map(|c| (resolved, c))))
    })?;
    let (resolved, customer) = match found {
        Ok(Some(found)) => found,
        // The id no longer names one customer: say where its records went.
        Err(Some(into)) => {
            return Err(ApiError {
                split_into: into,
                ..ApiError::new(StatusCode::GONE, "customer was split")
            });
        }
        Ok(None) | Err(None) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "customer not found"));
        }
    };
    Ok(Json(CustomerResponse {
        requested_id: resolved.alias,
        customer,
    }))
}

/// `GET /v1/customers/{id}/explain`: every link inside the customer with per-field levels and
/// weights, refused links and possible matches (the CLI's `explain --json`).
async fn explain_customer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<onetruth_store::CustomerExplanation>, ApiError> {
    let id: CustomerId = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid customer id: expected cus_<number>",
        )
    })?;
    let found = state.with_store(|s| match s.resolve(id)? {
        Some(r) => s.explain_customer(r.id),
        None => Ok(None),
    })?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "customer not found"))
}

async fn lookup(
    State(state): State<ApiState>,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LookupResponse>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "give exactly one of email, phone, external",
        )
    })?;
    let (kind, raw) = match (q.email, q.phone, q.external) {
        (Some(v), None, None) => (IdentifierKind::Email, v),
        (None, Some(v), None) => (IdentifierKind::Phone, v),
        (None, None, Some(v)) => (IdentifierKind::External, v),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give exactly one of email, phone, external",
            ));
        }
    };
    let id = state
        .inner
        .normalizer
        .normalize(&kind, &raw, None)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {kind}: {e}")))?;
    let customers = state.with_store(|s| {
        let mut out = Vec::new();
        for c in s.lookup(&id.kind, &id.value)? {
            if let Some(p) = s.customer(c)? {
                out.push(p);
            }
        }
        Ok(out)
    })?;
    if customers.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no customer matches"));
    }
    Ok(Json(LookupResponse { customers }))
}

/// Serve the API on `listener` until `shutdown` completes, then drain in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), shutdown).await
}

/// Serve `router` (e.g. [`daemon_router`]) on `listener` until `shutdown` completes.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// What a running daemon reports on `/readyz` and `/metrics`, and the writes it applies for
/// clients (`POST /v1/curation`, `POST /v1/admin/reresolve`).
pub trait Operations: Send + Sync + 'static {
    fn readiness(&self) -> Readiness;
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
    /// Apply `command` on the daemon's writer; returns once it is committed. Blocking.
    fn apply(&self, command: WriteCommand) -> Result<(), String>;
}

/// `POST /v1/curation` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurationRequest {
    /// `never_merge`, `force_merge` (two records) or `detach` (one).
    pub action: String,
    /// `SOURCE:SOURCE_ID` of each record.
    pub records: Vec<String>,
}

async fn curation(
    State((state, ops)): State<(ApiState, std::sync::Arc<dyn Operations>)>,
    body: Result<Json<CurationRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, m.to_string());
    let Json(req) = body.map_err(|_| {
        bad("expected {\"action\": \"never_merge\" | \"force_merge\" | \"detach\", \"records\": [\"SOURCE:SOURCE_ID\", ...]}")
    })?;
    let mut ids = Vec::new();
    for key in &req.records {
        let (source, source_id) = key
            .split_once(':')
            .ok_or_else(|| bad("write records as SOURCE:SOURCE_ID"))?;
        let id = state
            .with_store(|s| s.record_id(source, source_id))?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such record"))?;
        ids.push(id);
    }
    let decision = match (req.action.as_str(), ids.as_slice()) {
        ("never_merge", [a, b]) if a != b => CuratorDecision::NeverMerge(*a, *b),
        ("force_merge", [a, b]) if a != b => CuratorDecision::ForceMerge(*a, *b),
        ("detach", [a]) => CuratorDecision::Detach(*a),
        ("never_merge" | "force_merge", _) => return Err(bad("give two different records")),
        ("detach", _) => return Err(bad("give one record")),
        _ => return Err(bad("action: use never_merge, force_merge or detach")),
    };
    apply(ops, WriteCommand::Curate(decision)).await
}

async fn reresolve(
    State((_, ops)): State<(ApiState, std::sync::Arc<dyn Operations>)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    apply(ops, WriteCommand::Reresolve).await
}

/// Run a command on the daemon's writer, off the async workers.
async fn apply(
    ops: std::sync::Arc<dyn Operations>,
    command: WriteCommand,
) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::task::spawn_blocking(move || ops.apply(command)).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({"applied": true}))),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "command not applied");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not applied: the daemon is stopping or its writer failed",
            ))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )),
    }
}

/// `GET /readyz`: `200` when the store is open, the resolver loaded and every connector
/// running; `503` otherwise, with the same body saying what is not.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `open`.
    pub store: &'static str,
    /// `loading` or `loaded`.
    pub resolver: &'static str,
    /// Connector name -> `running`, `retrying`, `failed` or `stopped`.
    pub connectors: std::collections::BTreeMap<String, String>,
}

/// The daemon's router: the API plus `/readyz`, `/metrics` and the writes it applies.
pub fn daemon_router(state: ApiState, ops: std::sync::Arc<dyn Operations>) -> Router {
    let ready = ops.clone();
    let writes = Router::new()
        .route("/v1/curation", axum::routing::post(curation))
        .route("/v1/admin/reresolve", axum::routing::post(reresolve))
        .with_state((state.clone(), ops.clone()));
    router(state)
        .merge(writes)
        .route(
            "/readyz",
            get(move || {
                let r = ready.readiness();
                async move {
                    let status = if r.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, Json(r))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = ops.metrics();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
}
