//! The test broker itself: it starts, takes topics, and what is produced is read back.

use std::time::{Duration, Instant};

use onetruth_testkit::{Broker, Record};

#[test]
fn produced_messages_are_read_back_with_keys_and_headers() {
    let broker = Broker::start();
    broker.create_topic("smoke", 2);
    let (partition, offset) = broker.produce(
        "smoke",
        Some(b"k1"),
        Some(br#"{"id":1}"#),
        &[("tenant", b"eu")],
    );
    assert_eq!(offset, 0);
    let started = Instant::now();
    let at = broker.produce_records(
        "smoke",
        (0..2000).map(|i| Record::value(format!("{i}")).partition(i % 2)),
    );
    assert_eq!(at.len(), 2000);
    // In order within each partition.
    assert_eq!(at[0], (0, if partition == 0 { 1 } else { 0 }));
    assert_eq!(at[3], (1, if partition == 1 { 2 } else { 1 }));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    broker.produce_records("smoke", [Record::tombstone().key("k1").partition(0)]);
    let read = broker.read("smoke", 2002, Duration::from_secs(20));
    assert_eq!(read.len(), 2002);
    let first = read
        .iter()
        .find(|m| m.partition == partition && m.offset == 0)
        .unwrap();
    assert_eq!(first.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(first.header("tenant").as_deref(), Some("eu"));
    let last = read.iter().rfind(|m| m.partition == 0).unwrap();
    assert_eq!(last.value, None, "a tombstone has no value");
}

#[test]
fn brokers_are_independent_and_stop_on_drop() {
    let a = Broker::start();
    let b = Broker::start();
    assert_ne!(a.port(), b.port());
    a.create_topic("only-on-a", 1);
    a.produce("only-on-a", None, Some(b"x"), &[]);
    assert!(b.committed_offsets("g", "only-on-a").is_empty());
    let port = a.port();
    drop(a);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the broker is gone"
    );
}
