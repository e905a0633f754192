//! The file transport's sources on real files: named files read once, and a watched inbox that
//! takes each export once, resumes after the last committed line and skips what it should.

use std::path::Path;
use std::time::Duration;

use onetruth_connect::{Checkpoints, Poll, RawBatch, Source};
use onetruth_connector_file::{FileParams, FilesSource, InboxSource};

fn params() -> FileParams {
    FileParams {
        settle_ms: Some(0),
        poll_interval_ms: Some(1),
        ..FileParams::default()
    }
}

fn csv(dir: &Path, name: &str, rows: std::ops::Range<u32>) {
    let mut text = String::from("id,email\n");
    for i in rows {
        text.push_str(&format!("{i},{i}@x.com\n"));
    }
    std::fs::write(dir.join(name), text).unwrap();
}

/// Poll until the source idles or ends; every batch in order.
fn drain(source: &mut dyn Source, max: usize) -> Vec<RawBatch> {
    let mut out = Vec::new();
    loop {
        match source.poll(max).unwrap() {
            Poll::Records(b) => out.push(b),
            Poll::Idle(_) | Poll::End => return out,
        }
    }
}

fn ids(batches: &[RawBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| &b.records)
        .map(|r| r.position.0.rsplit(':').next().unwrap().to_string())
        .collect()
}

/// What the store would hold after committing `batches`: the last position per stream.
fn stored(batches: &[RawBatch]) -> Checkpoints {
    let mut c = Checkpoints::new();
    for b in batches {
        for cp in &b.checkpoints {
            c.insert(cp.stream.clone(), cp.position.clone());
        }
    }
    c
}

#[test]
fn named_files_are_read_in_order_with_a_checkpoint_per_file() {
    let dir = tempfile::tempdir().unwrap();
    csv(dir.path(), "a.csv", 0..3);
    csv(dir.path(), "b.csv", 3..4);
    let paths = [dir.path().join("a.csv"), dir.path().join("b.csv")];
    let mut s = FilesSource::open(&paths, &params()).unwrap();
    let batches = drain(&mut s, 2);
    // Lines 2..=4 of a.csv, line 2 of b.csv.
    assert_eq!(ids(&batches), ["2", "3", "4", "2"]);
    let last = stored(&batches);
    assert!(
        last[&paths[0].display().to_string()].starts_with("done:4:"),
        "{last:?}"
    );
    assert!(
        last[&paths[1].display().to_string()].starts_with("done:2:"),
        "{last:?}"
    );
    assert!(matches!(s.poll(2).unwrap(), Poll::End));
    let p = s.progress().unwrap();
    assert_eq!(p.done, p.total);
    // A missing file fails before anything is read.
    let err = FilesSource::open(&[dir.path().join("nope.csv")], &params())
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

#[test]
fn the_inbox_takes_each_export_once_and_skips_partial_and_hidden_files() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path();
    let mut s = InboxSource::new(inbox.into(), params(), Checkpoints::new()).unwrap();
    assert!(
        matches!(s.poll(10).unwrap(), Poll::Idle(_)),
        "empty inbox idles"
    );
    csv(inbox, "contacts-1.csv", 0..3);
    csv(inbox, ".hidden.csv", 0..1);
    csv(inbox, "upload.csv.part", 0..1);
    csv(inbox, "notes.txt", 0..1);
    let first = drain(&mut s, 10);
    assert_eq!(ids(&first), ["2", "3", "4"]);
    assert!(stored(&first)["contacts-1.csv"].starts_with("done:"));
    assert!(drain(&mut s, 10).is_empty(), "a file is taken once");

    // A new export is taken; a restarted inbox with the stored checkpoints takes neither again.
    csv(inbox, "contacts-2.csv", 10..12);
    let second = drain(&mut s, 10);
    assert_eq!(ids(&second), ["2", "3"]);
    let mut all = first;
    all.extend(second);
    let mut restarted = InboxSource::new(inbox.into(), params(), stored(&all)).unwrap();
    assert!(drain(&mut restarted, 10).is_empty());

    // The same name with other content is another export: read again.
    std::thread::sleep(Duration::from_millis(5));
    csv(inbox, "contacts-1.csv", 0..5);
    assert_eq!(ids(&drain(&mut restarted, 10)).len(), 5);
}

#[test]
fn a_restarted_inbox_resumes_after_the_last_committed_line() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path();
    csv(inbox, "big.csv", 0..10);
    let mut s = InboxSource::new(inbox.into(), params(), Checkpoints::new()).unwrap();
    // Two batches of four were committed; the rest was not.
    let committed: Vec<RawBatch> = (0..2)
        .map(|_| match s.poll(4).unwrap() {
            Poll::Records(b) => b,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids(&committed), ["2", "3", "4", "5", "6", "7", "8", "9"]);
    assert!(stored(&committed)["big.csv"].starts_with("reading:9:"));
    let mut resumed = InboxSource::new(inbox.into(), params(), stored(&committed)).unwrap();
    assert_eq!(ids(&drain(&mut resumed, 3)), ["10", "11"]);
}

#[test]
fn a_file_still_being_written_waits_and_a_corrupt_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path();
    let slow = FileParams {
        settle_ms: Some(300),
        ..params()
    };
    let mut s = InboxSource::new(inbox.into(), slow, Checkpoints::new()).unwrap();
    csv(inbox, "a.csv", 0..2);
    assert!(drain(&mut s, 10).is_empty(), "not settled yet");
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(ids(&drain(&mut s, 10)), ["2", "3"]);

    // A gzip file that is not gzip fails; the inbox marks it and goes on to the next file.
    std::fs::write(inbox.join("broken.csv.gz"), b"not gzip at all").unwrap();
    let mut s = InboxSource::new(inbox.into(), params(), Checkpoints::new()).unwrap();
    let batches = drain(&mut s, 10);
    let last = stored(&batches);
    assert!(last["broken.csv.gz"].starts_with("failed:"), "{last:?}");
    assert!(last["a.csv"].starts_with("done:"), "{last:?}");
    assert!(
        drain(&mut s, 10).is_empty(),
        "a failed file is not retried until it changes"
    );
    let only_pattern = FileParams {
        pattern: Some("b-*.csv".into()),
        ..params()
    };
    csv(inbox, "b-1.csv", 0..1);
    let mut s = InboxSource::new(inbox.into(), only_pattern, Checkpoints::new()).unwrap();
    let batches = drain(&mut s, 10);
    assert_eq!(stored(&batches).keys().collect::<Vec<_>>(), ["b-1.csv"]);
}
