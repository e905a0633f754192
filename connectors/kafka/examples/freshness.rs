//! Freshness benchmark: how long from producing a message to seeing its record through a
//! running daemon's `/v1/lookup`, at a steady rate.
//!
//! ```sh
//! cargo run --release -p onetruth-connector-kafka --example freshness -- \
//!     --brokers 127.0.0.1:9092 --topic signups --api http://127.0.0.1:7700 \
//!     --rate 5000 --seconds 60 [--sample 50] [--linger-ms 5]
//! ```
//!
//! Produces `rate` new sign-ups a second (`{"id","updated_at","name","email"}`, each with an
//! email never seen before, shaped for the README tour's `signups-kafka.toml`) for `seconds`,
//! batched by the producer as it lingers up to `--linger-ms` (default 5). Every `sample`-th message is probed: one thread polls
//! `/v1/lookup?email=` every 5 ms from the moment it was sent until it answers 200, oldest
//! probe first. Prints the produce-to-visible latency percentiles of the probed messages.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn required(name: &str) -> String {
    arg(name).unwrap_or_else(|| {
        eprintln!("freshness: {name} is required");
        std::process::exit(2)
    })
}

fn number(name: &str, default: f64) -> f64 {
    arg(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| {
            eprintln!("freshness: {name} takes a number");
            std::process::exit(2)
        })
    })
}

fn main() {
    let brokers = required("--brokers");
    let topic = required("--topic");
    let api = required("--api");
    let rate = number("--rate", 5000.0);
    let seconds = number("--seconds", 60.0);
    let sample = number("--sample", 50.0).max(1.0) as u64;
    // A run tag keeps emails new from run to run.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    // As a live producer would: batches of what accumulates in 5 ms (about 25 messages at
    // 5,000/s). The daemon's consumer group is new and reads from the start, so it never
    // resumes inside a batch (which tansu 0.6 cannot serve).
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "linger.ms",
            arg("--linger-ms").unwrap_or_else(|| "5".into()),
        )
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer");
    let (probe_tx, probe_rx) = mpsc::channel::<(String, Instant)>();
    let (lat_tx, lat_rx) = mpsc::channel::<Duration>();
    // One prober, in order: messages become visible in about the order they were sent, so it
    // waits on the oldest probe (polling every 5 ms) and the ones behind it are usually there
    // by then. Few requests, so the probing does not slow what it measures.
    let prober = {
        let (tx, api) = (lat_tx.clone(), api.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            for (email, sent) in probe_rx {
                let url = format!("{api}/v1/lookup?email={email}");
                loop {
                    let ok = agent
                        .get(&url)
                        .call()
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    if ok {
                        let _ = tx.send(sent.elapsed());
                        break;
                    }
                    if sent.elapsed() > Duration::from_secs(60) {
                        eprintln!("freshness: {email} not visible after 60 s");
                        let _ = tx.send(sent.elapsed());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    drop(lat_tx);

    let total = (rate * seconds) as u64;
    let started = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            producer.poll(wait);
        }
        let id = format!("f{run}-{n}");
        let email = format!("{id}@fresh.example");
        let value = format!(
            r#"{{"id":"{id}","updated_at":"2026-01-01 00:00:00","name":"Fresh Person{n}","email":"{email}"}}"#
        );
        let mut record = BaseRecord::<str, str>::to(&topic).key(&id).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(1));
                    record = back;
                }
                Err((e, _)) => panic!("producing: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
        if n % sample == 0 {
            let _ = probe_tx.send((email, Instant::now()));
        }
    }
    let produced_in = started.elapsed();
    producer.flush(Duration::from_secs(60)).expect("flushed");
    drop(probe_tx);
    let mut latencies: Vec<Duration> = lat_rx.iter().collect();
    let _ = prober.join();
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "produced {total} messages in {:.1}s ({:.0}/s); {} probed: produce -> visible p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        produced_in.as_secs_f64(),
        total as f64 / produced_in.as_secs_f64(),
        latencies.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}
