//! The Kafka source: a consumer-group member whose offsets live in the store.
//!
//! - Each batch carries one checkpoint per partition it read (`TOPIC/PARTITION` -> the next
//!   offset to read), which the store writes in the transaction holding the batch's records.
//! - On every assignment the consumer context reads the stored checkpoints and starts each
//!   partition there (a partition without one starts per `start`).
//! - On revocation it waits, up to [`REVOKE_WAIT`], until every batch already yielded for the
//!   revoked partitions has been committed or dropped, so the next owner starts after them;
//!   whatever it held but had not yielded is dropped (the next owner reads it).
//! - The batch's acknowledgement, which runs after its commit, publishes its quarantined
//!   messages to the dead-letter topic and commits its offsets to the group, asynchronously:
//!   group offsets are for lag tooling only.
//! - A batch dropped without a commit rewinds its partitions to their stored checkpoints.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use onetruth_connect::{
    Ack, Checkpoint, CheckpointReader, Delivered, Poll, RawBatch, RawBody, RawRecord, Source,
    SourceError,
};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use crate::dead_letter::{DeadLetter, Original, Originals};
use crate::decode::{self, Decoder, Message};
use crate::params::{KafkaParams, StartFrom};
use crate::secrets;

/// How long a revocation waits for the revoked partitions' batches to commit.
pub const REVOKE_WAIT: Duration = Duration::from_secs(10);

/// A topic and a partition.
type Tp = (String, i32);

/// Reads a Kafka consumer group's topics into batches (see the module documentation).
pub struct KafkaSource {
    connector: String,
    consumer: Option<Arc<BaseConsumer<Context>>>,
    shared: Arc<Shared>,
    decoder: Decoder,
    poll_timeout: Duration,
    dead_letter: Option<Arc<DeadLetter>>,
    /// The rebalance generation last looked at.
    seen: u64,
    /// Assigned partitions whose start is not known yet: their messages are not taken.
    unpositioned: HashSet<Tp>,
    /// An error met while a batch was being read, returned by the next poll.
    pending_error: Option<SourceError>,
    tombstones: metrics::Counter,
}

impl KafkaSource {
    /// Join `params.group_id` and subscribe. `checkpoints` reads the connector's stored
    /// checkpoints (on every assignment); `base_dir` is where `file:` references start.
    /// Fails (not retryably) on params or properties librdkafka refuses.
    pub fn new(
        params: &KafkaParams,
        connector: &str,
        checkpoints: Arc<dyn CheckpointReader>,
        base_dir: &Path,
    ) -> Result<KafkaSource, SourceError> {
        let context = || format!("connector {connector}");
        let problems = params.problems();
        if !problems.is_empty() {
            return Err(SourceError::new(context(), problems.join("; ")));
        }
        let (base, secrets) = client_config(params, connector, base_dir)?;
        let scrub = |e: KafkaError| {
            let mut text = e.to_string();
            for s in &secrets {
                if !s.is_empty() {
                    text = text.replace(s.as_str(), "***");
                }
            }
            SourceError::new(context(), text)
        };
        let mut config = base.clone();
        config
            .set("group.id", &params.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if !params.properties.contains_key("auto.offset.reset") {
            // Only for a stored offset the broker no longer holds: starts are set explicitly.
            config.set(
                "auto.offset.reset",
                match params.start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        }
        let shared = Arc::new(Shared {
            connector: connector.to_string(),
            checkpoints,
            start: params.start,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            assigned_total: metrics::counter!("onetruth_kafka_rebalances_total", "connector" => connector.to_string(), "kind" => "assign"),
            revoked_total: metrics::counter!("onetruth_kafka_rebalances_total", "connector" => connector.to_string(), "kind" => "revoke"),
        });
        let consumer: BaseConsumer<Context> = config
            .create_with_context(Context(shared.clone()))
            .map_err(scrub)?;
        let subscription = params.subscription();
        let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(scrub)?;
        let dead_letter = match &params.dead_letter_topic {
            Some(topic) => Some(Arc::new(
                DeadLetter::new(topic, &base, connector).map_err(scrub)?,
            )),
            None => None,
        };
        tracing::info!(connector, group = %params.group_id, topics = ?subscription, "kafka consumer subscribed");
        Ok(KafkaSource {
            connector: connector.to_string(),
            consumer: Some(Arc::new(consumer)),
            shared,
            decoder: Decoder {
                format: params.format,
                key: params.key,
            },
            poll_timeout: params.poll_timeout(),
            dead_letter,
            seen: 0,
            unpositioned: HashSet::new(),
            pending_error: None,
            tombstones: metrics::counter!("onetruth_kafka_tombstones_skipped_total", "connector" => connector.to_string()),
        })
    }

    /// The partitions assigned to this consumer now, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let mut a: Vec<Tp> = self.shared.lock().assigned.iter().cloned().collect();
        a.sort();
        a
    }

    /// After a rebalance (seen when a poll returns): drop what the batch being read holds of
    /// revoked partitions, and take note of partitions without a start.
    fn rebalanced(&mut self, building: &mut Building) {
        let revoked = {
            let mut st = self.shared.lock();
            self.unpositioned = st.unpositioned.clone();
            std::mem::take(&mut st.revoked)
        };
        for (topic, partition) in revoked {
            for part in building.parts.iter_mut() {
                if !part.dropped && part.topic == topic && part.partition == partition {
                    part.dropped = true;
                }
            }
        }
    }

    /// Position partitions that need it: rewound after a dropped batch, or assigned while the
    /// store could not be read.
    fn settle(&mut self, consumer: &BaseConsumer<Context>) -> Result<(), SourceError> {
        let (rewind, unpositioned) = {
            let mut st = self.shared.lock();
            let rewind: Vec<Tp> = std::mem::take(&mut st.rewind)
                .into_iter()
                .filter(|tp| st.assigned.contains(tp))
                .collect();
            (rewind, st.unpositioned.iter().cloned().collect::<Vec<_>>())
        };
        if rewind.is_empty() && unpositioned.is_empty() {
            return Ok(());
        }
        let restore = |shared: &Shared, rewind: &[Tp]| {
            shared.lock().rewind.extend(rewind.iter().cloned());
        };
        let stored = match self.shared.stored_offsets() {
            Ok(s) => s,
            Err(e) => {
                restore(&self.shared, &rewind);
                return Err(e);
            }
        };
        for tp in rewind.iter().chain(&unpositioned) {
            let offset = self.shared.start_offset(stored.get(tp).copied());
            if let Err(e) = consumer.seek(&tp.0, tp.1, offset, Duration::from_secs(10)) {
                // Seeking again is harmless: every rewind is tried again.
                restore(&self.shared, &rewind);
                return Err(SourceError::retryable(
                    format!("connector {}: seeking {}/{}", self.connector, tp.0, tp.1),
                    e,
                ));
            }
            tracing::info!(connector = %self.connector, partition = %decode::stream(&tp.0, tp.1), offset = ?offset, "partition repositioned at its stored checkpoint");
        }
        if !unpositioned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &unpositioned {
                tpl.add_partition(t, *p);
            }
            consumer.resume(&tpl).map_err(|e| {
                SourceError::retryable(format!("connector {}: resuming", self.connector), e)
            })?;
            let mut st = self.shared.lock();
            for tp in &unpositioned {
                st.unpositioned.remove(tp);
            }
            self.unpositioned = st.unpositioned.clone();
        }
        Ok(())
    }

    /// Add a message to the batch being read.
    fn take(&mut self, building: &mut Building, m: &BorrowedMessage<'_>) {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if !self.unpositioned.is_empty()
            && self.unpositioned.contains(&(topic.to_string(), partition))
        {
            return;
        }
        let part = building.part(topic, partition);
        building.parts[part].next = offset + 1;
        let message = Message {
            topic,
            partition,
            offset,
            key: m.key(),
            value: m.payload(),
            timestamp: m.timestamp().to_millis(),
        };
        let headers = m.headers().into_iter().flat_map(|h| {
            h.iter().filter_map(|h| {
                let value = std::str::from_utf8(h.value?).ok()?;
                Some((h.key, value))
            })
        });
        let Some(record) = self.decoder.decode(&message, headers) else {
            self.tombstones.increment(1);
            return;
        };
        if self.dead_letter.is_some() {
            let lossy = matches!(&record.body, RawBody::Malformed { .. })
                && message
                    .value
                    .is_some_and(|v| std::str::from_utf8(v).is_err());
            if message.key.is_some() || lossy {
                building.originals.insert(
                    record.position.0.clone(),
                    Original {
                        key: message.key.map(<[u8]>::to_vec),
                        value: if lossy {
                            message.value.map(<[u8]>::to_vec)
                        } else {
                            None
                        },
                    },
                );
            }
        }
        building.records.push((part, record));
    }

    /// The batch read, with its checkpoints and acknowledgement; `None` when it read nothing.
    fn finish(&self, building: Building) -> Option<RawBatch> {
        let Building {
            records,
            parts,
            originals,
        } = building;
        let records: Vec<RawRecord> = records
            .into_iter()
            .filter(|(p, _)| !parts[*p].dropped)
            .map(|(_, r)| r)
            .collect();
        let live: Vec<&Part> = parts.iter().filter(|p| !p.dropped).collect();
        if live.is_empty() {
            return None;
        }
        let checkpoints = live
            .iter()
            .map(|p| Checkpoint::new(decode::stream(&p.topic, p.partition), p.next.to_string()))
            .collect();
        let offsets: Vec<(Tp, i64)> = live
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.next))
            .collect();
        {
            let mut st = self.shared.lock();
            for (tp, next) in &offsets {
                *st.in_flight.entry(tp.clone()).or_default() += 1;
                st.next.insert(tp.clone(), *next);
                self.shared.update_lag(&mut st, tp);
            }
        }
        let in_flight = InFlight {
            shared: self.shared.clone(),
            partitions: offsets.iter().map(|(tp, _)| tp.clone()).collect(),
            committed: false,
        };
        let consumer = self
            .consumer
            .as_ref()
            .map(Arc::downgrade)
            .unwrap_or_default();
        let dead_letter = self.dead_letter.clone();
        let ack = Ack::new(move |delivered: &Delivered| {
            acknowledge(
                in_flight,
                &offsets,
                &consumer,
                dead_letter,
                &originals,
                delivered,
            );
        });
        Some(RawBatch {
            records,
            checkpoints,
            ack: Some(ack),
        })
    }
}

/// After a batch's commit: it is no longer in flight; its quarantined messages go to the
/// dead-letter topic; its offsets are committed to the group (informational, asynchronous).
fn acknowledge(
    mut in_flight: InFlight,
    offsets: &[(Tp, i64)],
    consumer: &Weak<BaseConsumer<Context>>,
    dead_letter: Option<Arc<DeadLetter>>,
    originals: &Originals,
    delivered: &Delivered,
) {
    in_flight.committed = true;
    let shared = in_flight.shared.clone();
    drop(in_flight);
    if let Some(dl) = dead_letter
        && !delivered.quarantined.is_empty()
    {
        dl.publish(&delivered.quarantined, originals);
    }
    let Some(consumer) = consumer.upgrade() else {
        return;
    };
    let mut tpl = TopicPartitionList::new();
    {
        // Only partitions still ours: another member may own the rest by now.
        let st = shared.lock();
        for ((t, p), next) in offsets {
            if st.assigned.contains(&(t.clone(), *p)) {
                let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*next));
            }
        }
    }
    if tpl.count() > 0
        && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
    {
        tracing::debug!(connector = %shared.connector, error = %e, "group offset commit failed (informational only)");
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let Some(consumer) = self.consumer.clone() else {
            return Err(SourceError::new(
                format!("connector {}", self.connector),
                "the kafka source is closed",
            ));
        };
        self.settle(&consumer)?;
        let mut building = Building::default();
        let deadline = Instant::now() + self.poll_timeout;
        while building.records.len() < max.max(1) {
            // Wait for the first message; after it, take only what is already fetched.
            let timeout = if building.parts.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let polled = consumer.poll(timeout);
            let generation = self.shared.generation.load(Ordering::Acquire);
            if generation != self.seen {
                self.seen = generation;
                self.rebalanced(&mut building);
            }
            match polled {
                Some(Ok(m)) => self.take(&mut building, &m),
                // A rebalance or a commit result was served: go on while there is time.
                None if building.parts.is_empty() && Instant::now() < deadline => {}
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let e = classify(&self.connector, e);
                    if building.parts.is_empty() {
                        return Err(e);
                    }
                    // What was read is yielded first.
                    self.pending_error = Some(e);
                    break;
                }
            }
        }
        Ok(match self.finish(building) {
            Some(batch) => Poll::Records(batch),
            None => Poll::Idle(Duration::ZERO),
        })
    }

    fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        if let Some(dl) = &self.dead_letter {
            dl.flush(Duration::from_secs(10));
        }
        if let Some(consumer) = self.consumer.take() {
            // Leaves the group (the revocation does not wait: nothing is in flight any more).
            consumer.unsubscribe();
            drop(consumer);
            tracing::info!(connector = %self.connector, "kafka consumer closed");
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// A transport error: retryable unless it needs a person (credentials, authorization, TLS,
/// or a failure librdkafka calls fatal).
fn classify(connector: &str, e: KafkaError) -> SourceError {
    use RDKafkaErrorCode as C;
    let fatal = matches!(e, KafkaError::MessageConsumptionFatal(_))
        || matches!(
            e.rdkafka_error_code(),
            Some(
                C::Authentication
                    | C::SaslAuthenticationFailed
                    | C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::SSL
                    | C::Fatal
            )
        );
    let context = format!("connector {connector}: kafka");
    if fatal {
        SourceError::new(context, e)
    } else {
        SourceError::retryable(context, e)
    }
}

/// The consumer's settings: brokers and the manifest's properties (references resolved), and
/// the resolved secrets, to scrub from error messages.
fn client_config(
    params: &KafkaParams,
    connector: &str,
    base_dir: &Path,
) -> Result<(ClientConfig, Vec<String>), SourceError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &params.brokers)
        .set("client.id", format!("onetruth-{connector}"))
        .set("statistics.interval.ms", "5000");
    let mut secrets = Vec::new();
    for (key, value) in &params.properties {
        let resolved = secrets::resolve(value, base_dir).map_err(|why| {
            SourceError::new(
                format!("connector {connector}: transport.properties.{key}"),
                why,
            )
        })?;
        let sensitive = ["password", "secret", "token", "jaas", "key.pem"]
            .iter()
            .any(|s| key.contains(s));
        if resolved != *value || sensitive {
            secrets.push(resolved.clone());
        }
        config.set(key, resolved);
    }
    Ok((config, secrets))
}

/// A batch being read.
#[derive(Default)]
struct Building {
    /// (index into `parts`, record)
    records: Vec<(usize, RawRecord)>,
    parts: Vec<Part>,
    originals: Originals,
}

/// A partition read in the batch: where it stands after it.
struct Part {
    topic: String,
    partition: i32,
    next: i64,
    /// Revoked while the batch was read: its messages are left to the next owner.
    dropped: bool,
}

impl Building {
    fn part(&mut self, topic: &str, partition: i32) -> usize {
        match self
            .parts
            .iter()
            .position(|p| !p.dropped && p.partition == partition && p.topic == topic)
        {
            Some(i) => i,
            None => {
                self.parts.push(Part {
                    topic: topic.to_string(),
                    partition,
                    next: 0,
                    dropped: false,
                });
                self.parts.len() - 1
            }
        }
    }
}

/// What the source, its consumer context (rebalances, on the polling thread) and its
/// acknowledgements (on the store's thread) share.
struct Shared {
    connector: String,
    checkpoints: Arc<dyn CheckpointReader>,
    start: StartFrom,
    state: Mutex<State>,
    /// Signalled when a batch stops being in flight.
    changed: Condvar,
    /// Moves on every rebalance and rewind; the source re-reads `State` when it does.
    generation: AtomicU64,
    /// The source is closing: revocations do not wait.
    closing: AtomicBool,
    assigned_total: metrics::Counter,
    revoked_total: metrics::Counter,
}

#[derive(Default)]
struct State {
    /// Yielded batches neither committed nor dropped yet, per partition.
    in_flight: HashMap<Tp, usize>,
    assigned: HashSet<Tp>,
    /// Revoked since the source last looked.
    revoked: Vec<Tp>,
    /// Assigned while the store could not be read: paused until positioned.
    unpositioned: HashSet<Tp>,
    /// A batch of theirs was dropped without a commit: re-read from the stored checkpoint.
    rewind: HashSet<Tp>,
    /// The next offset to read, as of the last batch yielded.
    next: HashMap<Tp, i64>,
    /// High watermarks, from librdkafka's statistics.
    high: HashMap<Tp, i64>,
    lag: HashMap<Tp, metrics::Gauge>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored checkpoints as next offsets by partition.
    fn stored_offsets(&self) -> Result<HashMap<Tp, i64>, SourceError> {
        let stored = self.checkpoints.checkpoints()?;
        let mut offsets = HashMap::new();
        for (stream, position) in stored {
            let parsed = stream
                .rsplit_once('/')
                .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)))
                .zip(position.parse::<i64>().ok());
            match parsed {
                Some((tp, offset)) => {
                    offsets.insert(tp, offset);
                }
                None => {
                    tracing::warn!(connector = %self.connector, stream, "unreadable kafka checkpoint ignored")
                }
            }
        }
        Ok(offsets)
    }

    /// Read the stored checkpoints, trying a few times (an assignment cannot wait long).
    fn stored_offsets_patiently(&self) -> Result<HashMap<Tp, i64>, SourceError> {
        let mut last = None;
        for delay in [0, 50, 250] {
            std::thread::sleep(Duration::from_millis(delay));
            match self.stored_offsets() {
                Ok(o) => return Ok(o),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    fn start_offset(&self, stored: Option<i64>) -> Offset {
        match (stored, self.start) {
            (Some(o), _) => Offset::Offset(o),
            (None, StartFrom::Earliest) => Offset::Beginning,
            (None, StartFrom::Latest) => Offset::End,
        }
    }

    /// Set the lag gauge of a partition from its high watermark and next offset.
    fn update_lag(&self, st: &mut State, tp: &Tp) {
        let (Some(high), Some(next)) = (st.high.get(tp).copied(), st.next.get(tp).copied()) else {
            return;
        };
        let connector = &self.connector;
        st.lag
            .entry(tp.clone())
            .or_insert_with(|| {
                metrics::gauge!("onetruth_kafka_consumer_lag", "connector" => connector.clone(), "topic" => tp.0.clone(), "partition" => tp.1.to_string())
            })
            .set((high - next).max(0) as f64);
    }
}

/// A yielded batch's hold on its partitions: released when its acknowledgement runs, or when
/// it is dropped unrun (then its partitions are rewound).
struct InFlight {
    shared: Arc<Shared>,
    partitions: Vec<Tp>,
    committed: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        for tp in &self.partitions {
            if let Some(n) = st.in_flight.get_mut(tp) {
                *n -= 1;
                if *n == 0 {
                    st.in_flight.remove(tp);
                }
            }
            if !self.committed && st.assigned.contains(tp) {
                st.rewind.insert(tp.clone());
            }
        }
        if !self.committed {
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
        }
        drop(st);
        self.shared.changed.notify_all();
    }
}

/// The consumer's callbacks: rebalances (on the polling thread), statistics, errors.
struct Context(Arc<Shared>);

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(connector = %self.0.connector, error = %error, reason, "kafka client error");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            return;
        };
        let mut st = self.0.lock();
        for (topic, t) in stats.topics {
            for (partition, p) in t.partitions {
                let Ok(partition) = partition.parse::<i32>() else {
                    continue;
                };
                let tp = (topic.clone(), partition);
                if partition < 0 || p.hi_offset < 0 || !st.assigned.contains(&tp) {
                    continue;
                }
                st.high.insert(tp.clone(), p.hi_offset);
                self.0.update_lag(&mut st, &tp);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::warn!(connector = %self.0.connector, error = ?other, "rebalance failed; partitions unassigned");
                self.revoke(consumer, tpl);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(connector = %self.0.connector, error = %e, "group offset commit failed (informational only)");
        }
    }
}

impl Context {
    /// Start every assigned partition at its stored checkpoint.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let shared = &self.0;
        let parts: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let stored = shared.stored_offsets_patiently();
        if let Err(e) = &stored {
            tracing::warn!(connector = %shared.connector, error = %e, "stored checkpoints unreadable at assignment; partitions paused until they are");
        }
        let mut starts = Vec::with_capacity(parts.len());
        for (t, p) in &parts {
            let offset = match &stored {
                Ok(stored) => match stored.get(&(t.clone(), *p)) {
                    Some(o) => Offset::Offset(*o),
                    // `latest` is the end as of this assignment: resolved now, so whatever is
                    // produced once the assignment is done is read (librdkafka would look the
                    // end up later, and a message produced meanwhile would be skipped).
                    None if shared.start == StartFrom::Latest => consumer
                        .fetch_watermarks(t, *p, Duration::from_secs(5))
                        .map(|(_, high)| Offset::Offset(high))
                        .unwrap_or(Offset::End),
                    None => Offset::Beginning,
                },
                // Paused right after, positioned (and resumed) once the store reads; anything
                // fetched before is not taken. An absolute offset, not a logical one: a seek
                // racing the end-offset lookup that `latest` needs could lose to it.
                Err(_) => Offset::Offset(0),
            };
            if let Err(e) = tpl.set_partition_offset(t, *p, offset) {
                tracing::warn!(connector = %shared.connector, error = %e, "setting a start offset");
            }
            starts.push(format!("{}@{}", decode::stream(t, *p), describe(offset)));
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = assigned {
            tracing::error!(connector = %shared.connector, error = %e, "assigning partitions failed");
        }
        if stored.is_err()
            && let Err(e) = consumer.pause(tpl)
        {
            tracing::error!(connector = %shared.connector, error = %e, "pausing partitions failed");
        }
        {
            let mut st = shared.lock();
            for tp in &parts {
                st.assigned.insert(tp.clone());
                st.next.remove(tp);
                st.high.remove(tp);
                if stored.is_err() {
                    st.unpositioned.insert(tp.clone());
                }
            }
        }
        shared.generation.fetch_add(1, Ordering::AcqRel);
        shared.assigned_total.increment(1);
        tracing::info!(connector = %shared.connector, partitions = %starts.join(", "), "kafka partitions assigned");
    }

    /// Hand partitions back once their yielded batches are committed (or a while has passed).
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let shared = &self.0;
        let parts: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        shared.lock().revoked.extend(parts.iter().cloned());
        shared.generation.fetch_add(1, Ordering::AcqRel);
        let mut waited = Duration::ZERO;
        if !shared.closing.load(Ordering::Acquire) {
            let started = Instant::now();
            let deadline = started + REVOKE_WAIT;
            let mut st = shared.lock();
            loop {
                let pending = parts
                    .iter()
                    .filter(|tp| st.in_flight.contains_key(*tp))
                    .count();
                if pending == 0 {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    tracing::warn!(connector = %shared.connector, partitions = pending, "revoked partitions still have uncommitted batches after {REVOKE_WAIT:?}; the next owner reads them again");
                    break;
                }
                st = shared
                    .changed
                    .wait_timeout(st, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            waited = started.elapsed();
        }
        {
            let mut st = shared.lock();
            for tp in &parts {
                st.assigned.remove(tp);
                st.unpositioned.remove(tp);
                st.rewind.remove(tp);
                st.next.remove(tp);
                st.high.remove(tp);
                if let Some(g) = st.lag.remove(tp) {
                    g.set(0.0);
                }
            }
        }
        let unassigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = unassigned {
            tracing::error!(connector = %shared.connector, error = %e, "unassigning partitions failed");
        }
        shared.revoked_total.increment(1);
        let names: Vec<String> = parts.iter().map(|(t, p)| decode::stream(t, *p)).collect();
        tracing::info!(connector = %shared.connector, partitions = %names.join(", "), waited_ms = waited.as_millis() as u64, "kafka partitions revoked");
    }
}

fn describe(offset: Offset) -> String {
    match offset {
        Offset::Offset(o) => o.to_string(),
        Offset::Beginning => "earliest".into(),
        Offset::End => "latest".into(),
        other => format!("{other:?}"),
    }
}

/// The part of librdkafka's statistics the lag gauge needs.
#[derive(serde::Deserialize)]
struct Stats {
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
}

#[derive(serde::Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(serde::Deserialize)]
struct PartitionStats {
    #[serde(default = "unknown")]
    hi_offset: i64,
}

fn unknown() -> i64 {
    -1
}
