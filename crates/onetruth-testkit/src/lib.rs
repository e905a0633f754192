//! Test helpers shared by onetruth's tests (a dev-dependency only).
//!
//! [`Broker`] runs the real [tansu](https://crates.io/crates/tansu) broker — Apache
//! Kafka-compatible, in memory — on a free loopback port for one test, and kills it when dropped:
//!
//! ```no_run
//! use onetruth_testkit::{Broker, Record};
//!
//! let broker = Broker::start();
//! broker.create_topic("orders", 3);
//! broker.produce("orders", Some(b"c1"), Some(br#"{"id":"c1"}"#), &[("tenant", b"eu")]);
//! // Many messages: enqueued together, one flush.
//! let at = broker.produce_records("orders", (0..1000).map(|i| {
//!     Record::value(format!(r#"{{"id":"c{i}"}}"#)).partition(i % 3)
//! }));
//! assert_eq!(at.len(), 1000);
//! let read = broker.read("orders", 1001, std::time::Duration::from_secs(10));
//! # let _ = (broker.bootstrap(), read);
//! ```
//!
//! The binary is found through `TANSU_BIN`, then `PATH`, then `~/.cargo/bin/tansu`; when it is
//! missing, [`Broker::start`] panics with how to install it
//! (`cargo install tansu --version 0.6.0 --features dynostore --locked`).
//!
//! Topics are not created automatically (a producer to a missing topic times out): create them
//! with [`Broker::create_topic`] first.
//!
//! **tansu 0.6 and record batches.** A fetch from an offset *inside* a record batch of several
//! messages returns nothing from that batch (tansu serves the batches whose first offset is at or
//! after the fetch offset; Kafka returns the batch holding the offset and the client skips what
//! precedes it). A consumer resuming from a stored offset in the middle of such a batch stalls
//! on that partition until a later batch arrives. The producers here therefore write one message
//! per batch (`batch.num.messages = 1`); a test that produces with its own client must do the
//! same for any offset it may resume from.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// How to get the broker, for the panic message when it is missing.
pub const INSTALL_HINT: &str = "cargo install tansu --version 0.6.0 --features dynostore --locked";

/// How long a produce, a flush or a read waits for the broker before the test fails.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// A tansu broker on `127.0.0.1:<free port>`, in memory, killed on drop.
pub struct Broker {
    child: Child,
    port: u16,
    bin: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Start a broker and wait until it accepts connections. Panics (failing the test) when the
    /// binary is missing or the broker does not come up, with what to do about it.
    pub fn start() -> Broker {
        let bin = find_tansu(
            std::env::var_os("TANSU_BIN"),
            std::env::var_os("PATH"),
            std::env::var_os("HOME"),
        )
        .unwrap_or_else(|why| panic!("{}", missing_message(&why)));
        let mut last = String::new();
        // The free port is free when looked up, not necessarily when tansu binds it.
        for _ in 0..5 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "onetruth-testkit-tansu-{}-{port}.log",
                std::process::id()
            ));
            match start_on(&bin, port, &log) {
                Ok(child) => {
                    return Broker {
                        child,
                        port,
                        bin,
                        log,
                    };
                }
                Err(e) => {
                    last = e;
                    let _ = std::fs::remove_file(&log);
                }
            }
        }
        panic!("tansu ({}) did not start: {last}", bin.display());
    }

    /// The bootstrap address for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Create a topic with `partitions` partitions (tansu's own CLI; it returns once the topic
    /// exists).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(&self.bin)
            .args(["topic", "create", name, "--broker"])
            .arg(format!("tcp://{}", self.bootstrap()))
            .arg("--partitions")
            .arg(partitions.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {} topic create: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Produce one message (partition by the key's hash, or any when there is no key) and wait
    /// until the broker has it. `value: None` is a tombstone. Returns (partition, offset).
    pub fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> (i32, i64) {
        let record = Record {
            partition: None,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
        };
        self.produce_records(topic, [record])[0]
    }

    /// Produce many messages fast: all are enqueued, then flushed once. Returns where each
    /// landed, (partition, offset), in the order given. Messages to one partition keep their
    /// order. Each message is a record batch of its own (see the crate documentation).
    pub fn produce_records(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = Record>,
    ) -> Vec<(i32, i64)> {
        let producer: BaseProducer<Deliveries> = self
            .client_config()
            .set("linger.ms", "1")
            // One message per record batch: tansu 0.6 serves a fetch from the batches that
            // start at or after the fetch offset, so a consumer resuming inside a batch of
            // several messages would get nothing from it (real Kafka returns the whole batch).
            .set("batch.num.messages", "1")
            .set("queue.buffering.max.messages", "1000000")
            // One request in flight per partition: a retry never reorders.
            .set("max.in.flight.requests.per.connection", "1")
            .set("message.timeout.ms", BROKER_TIMEOUT.as_millis().to_string())
            .create_with_context(Deliveries::default())
            .expect("a producer");
        let mut count = 0;
        for (i, r) in records.into_iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut br: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(topic, i).headers(headers);
            br.partition = r.partition;
            br.key = r.key.as_deref();
            br.payload = r.value.as_deref();
            let mut br = br;
            loop {
                match producer.send(br) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        assert!(
                            matches!(
                                e.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                            ),
                            "producing to {topic}: {e}"
                        );
                        producer.poll(Duration::from_millis(10));
                        br = back;
                    }
                }
            }
            count += 1;
        }
        producer
            .flush(BROKER_TIMEOUT)
            .unwrap_or_else(|e| panic!("flushing to {topic} (does the topic exist?): {e}"));
        let delivered = std::mem::take(&mut *producer.context().0.lock().unwrap());
        assert_eq!(delivered.len(), count, "every message delivered");
        let mut out = vec![(0, 0); count];
        for (i, r) in delivered {
            out[i] = r.unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
        }
        out
    }

    /// Read `count` messages of `topic` from the beginning of every partition (no consumer
    /// group), waiting up to `timeout`; fewer when the time runs out. In partition order, then
    /// offset order.
    pub fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<Received> {
        // A group of its own that never commits: assigned partitions, read from the start.
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", format!("onetruth-testkit-read-{}", self.port))
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), BROKER_TIMEOUT)
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .expect("partition offset");
            }
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out.sort_by_key(|m| (m.partition, m.offset));
        out
    }

    /// The offsets consumer group `group` has committed for `topic`, by partition (partitions
    /// without a committed offset are absent).
    pub fn committed_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), BROKER_TIMEOUT)
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
        let committed = consumer
            .committed_offsets(tpl, BROKER_TIMEOUT)
            .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// The broker's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A message to produce ([`Broker::produce_records`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `None`: by the key's hash (any partition without a key).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// A message with this value.
    pub fn value(value: impl Into<Vec<u8>>) -> Record {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A message without a value (what follows a delete in a compacted topic).
    pub fn tombstone() -> Record {
        Record::default()
    }

    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Record {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Record {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Record {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A message read back ([`Broker::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Received {
    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Where a message landed, (partition, offset), or why it did not.
type Delivery = Result<(i32, i64), String>;

/// Collects delivery reports by message index.
#[derive(Default)]
struct Deliveries(Mutex<Vec<(usize, Delivery)>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let r = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push((index, r));
    }
}

/// What a test without the broker fails with.
fn missing_message(why: &str) -> String {
    format!(
        "the Kafka-compatible test broker `tansu` is needed: {why}.\n\
         Install it with:\n    {INSTALL_HINT}\n\
         (about 10 minutes on 2 cores), or point TANSU_BIN at the binary."
    )
}

/// `TANSU_BIN`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`.
fn find_tansu(
    tansu_bin: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    if let Some(bin) = tansu_bin {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("TANSU_BIN={} is not a file", bin.display()))
        };
    }
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("tansu");
            if bin.is_file() {
                return Ok(bin);
            }
        }
    }
    if let Some(home) = home {
        let bin = Path::new(&home).join(".cargo/bin/tansu");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    Err("not found through TANSU_BIN, PATH or ~/.cargo/bin".into())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Start tansu on `port` and wait until it accepts connections.
fn start_on(bin: &Path, port: u16, log: &Path) -> Result<Child, String> {
    let url = format!("tcp://127.0.0.1:{port}");
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(["broker", "--storage-engine", "memory://tansu/"])
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("exited with {status}: {log}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not accepting connections on {addr} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_broker_says_how_to_get_it() {
        let why = find_tansu(Some("/nonexistent/tansu".into()), None, None).unwrap_err();
        assert!(why.contains("TANSU_BIN=/nonexistent/tansu"), "{why}");
        let why = find_tansu(
            None,
            Some("/nonexistent".into()),
            Some("/nonexistent".into()),
        )
        .unwrap_err();
        let message = missing_message(&why);
        assert!(message.contains(INSTALL_HINT), "{message}");
        assert!(
            message.contains("--version 0.6.0 --features dynostore --locked"),
            "{message}"
        );
    }

    #[test]
    fn the_binary_is_found_on_path_then_in_cargo_home() {
        let dir =
            std::env::temp_dir().join(format!("onetruth-testkit-find-{}", std::process::id()));
        let bin_dir = dir.join(".cargo/bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::write(bin_dir.join("tansu"), "").unwrap();
        assert_eq!(
            find_tansu(None, Some(bin_dir.clone().into()), None).unwrap(),
            bin_dir.join("tansu")
        );
        assert_eq!(
            find_tansu(None, Some("/nonexistent".into()), Some(dir.clone().into())).unwrap(),
            bin_dir.join("tansu")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
