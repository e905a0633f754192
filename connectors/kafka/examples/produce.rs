//! Produce JSON lines to a Kafka topic: the README's daemon tour and the Kafka benchmarks use
//! it to feed a broker without other tools.
//!
//! ```sh
//! cargo run --release -p onetruth-connector-kafka --example produce -- \
//!     --brokers 127.0.0.1:9092 --topic signups [--key-field id] [--rate 5000] [--batch N] [FILE]
//! ```
//!
//! Each non-empty line of FILE (or stdin) is one message's value; `--key-field` takes the key
//! from that top-level field of the line's JSON. `--rate` paces the messages (per second);
//! without it they go as fast as the broker takes them. Each message is a record batch of its
//! own unless `--batch N` lets the producer put up to N in one: tansu 0.6, the test broker,
//! serves no fetch that starts inside a batch of several, so a consumer that resumes mid-batch
//! stalls there (a fresh consumer group reading from the start is fine: the bulk benchmark).
//! With `--stamp`, each value gets a `"sent_us"` field (unix µs when it was sent), for the
//! freshness benchmark.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

struct Args {
    brokers: String,
    topic: String,
    key_field: Option<String>,
    rate: Option<f64>,
    stamp: bool,
    batch: u32,
    file: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut brokers, mut topic, mut key_field, mut rate, mut stamp, mut file) =
        (None, None, None, None, false, None);
    let mut batch = 1;
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--key-field" => key_field = Some(value()?),
            "--rate" => {
                rate = Some(
                    value()?
                        .parse::<f64>()
                        .map_err(|_| "--rate takes messages per second".to_string())?,
                )
            }
            "--stamp" => stamp = true,
            "--batch" => {
                batch = value()?
                    .parse::<u32>()
                    .map_err(|_| "--batch takes a number of messages".to_string())?
                    .max(1)
            }
            other if !other.starts_with("--") => file = Some(other.to_string()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or("--brokers is required")?,
        topic: topic.ok_or("--topic is required")?,
        key_field,
        rate,
        stamp,
        batch,
        file,
    })
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("produce: {e}");
            std::process::exit(2);
        }
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", if args.batch > 1 { "50" } else { "1" })
        .set("batch.num.messages", args.batch.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .unwrap_or_else(|e| {
            eprintln!("produce: {e}");
            std::process::exit(1)
        });
    let input: Box<dyn BufRead> = match &args.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).unwrap_or_else(|e| {
                eprintln!("produce: {f}: {e}");
                std::process::exit(1)
            }),
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let started = Instant::now();
    let mut sent = 0u64;
    for line in input.lines() {
        let line = line.unwrap_or_else(|e| {
            eprintln!("produce: reading input: {e}");
            std::process::exit(1)
        });
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rate) = args.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.poll(wait);
            }
        }
        let parsed: Option<serde_json::Value> = if args.key_field.is_some() || args.stamp {
            serde_json::from_str(line).ok()
        } else {
            None
        };
        let key = args.key_field.as_ref().and_then(|k| {
            parsed.as_ref().and_then(|v| match &v[k] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        });
        let value = match (args.stamp, parsed) {
            (true, Some(serde_json::Value::Object(mut o))) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or(0);
                o.insert("sent_us".into(), now.into());
                serde_json::Value::Object(o).to_string()
            }
            _ => line.to_string(),
        };
        let mut record = BaseRecord::<str, str>::to(&args.topic).payload(&value);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => {
                    eprintln!("produce: {e}");
                    std::process::exit(1)
                }
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    // One message per batch is slow to deliver in bulk: wait as long as delivery progresses.
    let mut left = producer.in_flight_count();
    while left > 0 {
        let _ = producer.flush(Duration::from_secs(10));
        let now = producer.in_flight_count();
        if now == left {
            eprintln!("produce: {now} messages not delivered, and no progress for 10 s");
            std::process::exit(1);
        }
        if now > 0 {
            eprintln!("produce: {now} messages still to deliver");
        }
        left = now;
    }
    eprintln!(
        "produced {sent} messages to {} in {:.2}s",
        args.topic,
        started.elapsed().as_secs_f64()
    );
}
