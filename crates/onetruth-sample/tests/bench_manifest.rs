//! `bench.toml` maps every line `onetruth-sample bench` writes.

use std::path::Path;

use onetruth_connect::{Manifest, Mapper};
use onetruth_connector_file::{FileParams, FileSource};
use onetruth_model::{IdentifierKind, Normalizer};

#[test]
fn bench_manifest_maps_every_bench_record() {
    let manifest =
        Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("bench.toml")).unwrap();
    let mapper = Mapper::new(&manifest, &Normalizer::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.jsonl");
    onetruth_sample::write_bench(
        std::fs::File::create(&path).unwrap(),
        1_000,
        onetruth_sample::BENCH_SEED,
    )
    .unwrap();
    let params = FileParams::from_manifest(manifest.transport.as_ref()).unwrap();
    let mut source = FileSource::open(&path, &params).unwrap();
    let mut mapped = Vec::new();
    loop {
        let batch = source.read(256).unwrap();
        if batch.is_empty() {
            break;
        }
        for raw in batch {
            mapped.push(mapper.map(&raw, 0).unwrap());
        }
    }
    assert_eq!(mapped.len(), 1_000);
    let first = &mapped[0];
    assert_eq!(first.source, "bench");
    assert_eq!(first.source_id, "crm-00000000");
    assert_eq!(first.version, 1_700_000_001);
    assert_eq!(first.attributes.addresses[0].country.as_deref(), Some("US"));
    for r in &mapped {
        let kinds: Vec<&IdentifierKind> = r.identifiers.iter().map(|i| &i.kind).collect();
        assert_eq!(kinds, [&IdentifierKind::Email, &IdentifierKind::Phone]);
        assert!(r.attributes.flagged.is_empty());
        assert!(r.attributes.full_name.is_some());
    }
    assert!(mapped.windows(2).all(|w| w[0].version < w[1].version));
}

#[test]
fn the_kafka_bench_manifest_maps_like_the_file_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = Manifest::load(&dir.join("bench.toml")).unwrap();
    let kafka = Manifest::load(&dir.join("bench-kafka.toml")).unwrap();
    // The same mapping; only the transport differs.
    assert_eq!(
        Manifest {
            transport: None,
            ..kafka.clone()
        },
        Manifest {
            transport: None,
            ..file
        }
    );
    assert_eq!(kafka.transport.as_ref().unwrap()["type"], "kafka");
}
