//! The files in `deploy/` hold together: the example config and every shipped connector
//! manifest pass `onetruth run --check-config` with the real binary; the Kubernetes ConfigMap,
//! laid out as the StatefulSet mounts it, passes the same check; the compose file mounts only
//! files that exist, mounts everything the config names, and creates every topic the manifests
//! read. YAML is read with line-based string checks (the workspace has no YAML parser the tests
//! could use for it); TOML through the `config` crate, as the binary reads it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::onetruth;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .canonicalize()
        .expect("deploy/ exists")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A TOML file as JSON, read by the `config` crate as the binary reads configs and manifests.
fn toml(path: &Path) -> Value {
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Value>())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What `run --check-config` must say of a manifest: `source (transport)`.
fn listed_as(manifest: &Value) -> String {
    let source = manifest["source"].as_str().expect("manifest has a source");
    let transport = manifest["transport"]["type"].as_str().unwrap_or("file");
    format!("{source} ({transport})")
}

/// The `*.toml` files of a directory, sorted.
fn manifests_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    found.sort();
    found
}

/// Run `--check-config` on `config` and insist that it passes and names every manifest.
fn check_config(config: &Path, manifests: &[PathBuf]) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("check.db");
    let r = onetruth(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--check-config",
        ],
    );
    assert_eq!(
        r.status,
        0,
        "`onetruth --config {} run --check-config` failed (if it says \"unknown transport `kafka`\", \
         the Kafka transport is not registered in onetruth_pipeline::transports() yet):\n{}\n{}",
        config.display(),
        r.stdout,
        r.stderr
    );
    let out = r.stdout.trim();
    let n = manifests.len();
    assert!(
        out.starts_with(&format!(
            "config ok: {n} connector{}: ",
            if n == 1 { "" } else { "s" }
        )),
        "{out}"
    );
    for m in manifests {
        let want = listed_as(&toml(m));
        assert!(
            out.contains(&want),
            "{} should be checked as {want:?}: {out}",
            m.display()
        );
    }
    assert!(!db.exists(), "checking creates no store");
}

#[test]
fn the_example_config_runs_every_shipped_manifest_and_they_check() {
    let deploy = deploy_dir();
    let config = deploy.join("onetruth.example.toml");
    let manifests = manifests_in(&deploy.join("connectors"));
    assert!(manifests.len() >= 3, "{manifests:?}");

    // The example lists exactly the shipped manifests.
    let listed: BTreeSet<PathBuf> = strings(&toml(&config)["daemon"]["connectors"])
        .iter()
        .map(|c| {
            deploy
                .join(c)
                .canonicalize()
                .unwrap_or_else(|_| deploy.join(c))
        })
        .collect();
    let shipped: BTreeSet<PathBuf> = manifests.iter().cloned().collect();
    assert_eq!(
        listed, shipped,
        "[daemon] connectors in the example config vs deploy/connectors/*.toml"
    );

    // A Kafka JSON topic, a Debezium topic and a file inbox, as deploy/README.md says.
    let transports: BTreeSet<(String, String)> = manifests
        .iter()
        .map(|m| {
            let t = &toml(m)["transport"];
            (
                t["type"].as_str().unwrap_or("file").to_string(),
                t["format"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [("kafka", "json"), ("kafka", "debezium"), ("file", "csv")] {
        assert!(
            transports.contains(&(want.0.to_string(), want.1.to_string())),
            "no {want:?} manifest in {transports:?}"
        );
    }

    check_config(&config, &manifests);
}

/// The block scalars (`key: |`) under the top-level `data:` of a ConfigMap, by key.
fn configmap_data(yaml: &str) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut in_data = false;
    let mut current: Option<(String, String)> = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() && !line.starts_with('#') {
            in_data = line.trim_end() == "data:";
            if let Some((k, v)) = current.take() {
                data.insert(k, v);
            }
            continue;
        }
        if !in_data {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && !rest.starts_with(' ')
            && !rest.is_empty()
        {
            if let Some((k, v)) = current.take() {
                data.insert(k, v);
            }
            let (key, style) = rest
                .split_once(':')
                .unwrap_or_else(|| panic!("not a `key: |` line under data: {line:?}"));
            assert!(
                matches!(style.trim(), "|" | "|-" | "|+"),
                "data.{key} should be a block scalar: {line:?}"
            );
            current = Some((key.trim().to_string(), String::new()));
            continue;
        }
        if let Some((_, text)) = current.as_mut() {
            assert!(
                line.trim().is_empty() || line.starts_with("    "),
                "block scalar line not indented by four: {line:?}"
            );
            text.push_str(line.get(4..).unwrap_or(""));
            text.push('\n');
        }
    }
    if let Some((k, v)) = current.take() {
        data.insert(k, v);
    }
    data
}

/// The value of every `name: value` line (list dashes, quotes and trailing comments removed).
fn yaml_values(yaml: &str, name: &str) -> Vec<String> {
    yaml.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("- ").unwrap_or(l);
            let v = l.strip_prefix(name)?.strip_prefix(':')?;
            let v = v.split(" #").next().unwrap().trim();
            Some(v.trim_matches('"').trim_matches('\'').to_string())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first `name: value` after the first line that reads `marker` (trimmed).
fn yaml_value_after(yaml: &str, marker: &str, name: &str) -> String {
    let at = yaml
        .lines()
        .position(|l| l.trim() == marker)
        .unwrap_or_else(|| panic!("no line `{marker}`"));
    let rest: Vec<&str> = yaml.lines().skip(at + 1).collect();
    yaml_values(&rest.join("\n"), name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no `{name}:` after `{marker}`"))
}

/// A configMap volume's `items`: (key, path) pairs.
fn configmap_items(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let key = l.strip_prefix("- key:")?.trim().to_string();
            let path = lines.get(i + 1)?.strip_prefix("path:")?.trim().to_string();
            Some((key, path))
        })
        .collect()
}

/// The `- ITEM` lines of a file (no comments).
fn yaml_list_items(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|v| v.trim().to_string())
        .collect()
}

#[test]
fn the_kubernetes_configmap_as_mounted_checks_and_every_reference_exists() {
    let k8s = deploy_dir().join("k8s");
    let kustomization = read(&k8s.join("kustomization.yaml"));
    let resources = yaml_list_items(&kustomization);
    assert!(resources.len() >= 3, "{resources:?}");
    for r in &resources {
        assert!(
            k8s.join(r).is_file(),
            "kustomization names {r}, which does not exist"
        );
    }
    let configmap = read(&k8s.join("configmap.yaml"));
    let statefulset = read(&k8s.join("statefulset.yaml"));
    let secret = read(&k8s.join("secret.example.yaml"));
    let data = configmap_data(&configmap);
    assert!(data.contains_key("onetruth.toml"), "{:?}", data.keys());

    // One replica: one writer per store file.
    assert_eq!(yaml_values(&statefulset, "replicas"), ["1"]);
    assert_eq!(
        yaml_values(&statefulset, "terminationGracePeriodSeconds"),
        ["40"]
    );

    // The StatefulSet mounts this ConfigMap, every key of it, at the directory its args name.
    let cm_name = yaml_value_after(&configmap, "metadata:", "name");
    assert_eq!(
        yaml_value_after(&statefulset, "configMap:", "name"),
        cm_name,
        "the StatefulSet mounts ConfigMap {cm_name}"
    );
    let items: BTreeMap<String, String> = configmap_items(&statefulset).into_iter().collect();
    let mounted: BTreeSet<&String> = items.keys().collect();
    let held: BTreeSet<&String> = data.keys().collect();
    assert_eq!(
        mounted, held,
        "ConfigMap keys mounted by the StatefulSet vs held"
    );
    let mount = yaml_value_after(&statefulset, "- name: config", "mountPath");
    let config_in_pod = format!("{mount}/{}", items["onetruth.toml"]);
    assert!(
        statefulset.contains(&format!("\"--config\", \"{config_in_pod}\"")),
        "the container runs with --config {config_in_pod}"
    );

    // Every `env:NAME` a manifest reads is in the container's environment, from the Secret.
    let secret_name = yaml_value_after(&secret, "metadata:", "name");
    assert_eq!(
        yaml_value_after(&statefulset, "secretKeyRef:", "name"),
        secret_name
    );
    let env_names = yaml_values(&statefulset, "name");
    let secret_key = yaml_value_after(&statefulset, "secretKeyRef:", "key");
    assert!(
        secret.contains(&format!("{secret_key}:")),
        "secret.example.yaml holds {secret_key}"
    );
    let mut references = 0;
    for (key, text) in &data {
        for (at, _) in text.match_indices("\"env:") {
            let name: String = text[at + 5..].chars().take_while(|c| *c != '"').collect();
            assert!(
                env_names.contains(&name),
                "{key} reads env:{name}, which the StatefulSet does not set"
            );
            references += 1;
        }
    }
    assert!(
        references > 0,
        "the k8s manifests read the SASL password from the environment"
    );

    // Lay the files out as the pod sees them and check them with the binary.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-onetruth");
    let mut manifests = Vec::new();
    for (key, path) in &items {
        let file = etc.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &data[key]).unwrap();
        if key != "onetruth.toml" {
            manifests.push(file);
        }
    }
    manifests.sort();
    let config = etc.join(&items["onetruth.toml"]);
    let listed: BTreeSet<PathBuf> = strings(&toml(&config)["daemon"]["connectors"])
        .iter()
        .map(|c| config.parent().unwrap().join(c))
        .collect();
    assert_eq!(
        listed,
        manifests.iter().cloned().collect(),
        "the k8s config's connectors vs the manifests mounted"
    );
    check_config(&config, &manifests);
}

/// `./HOST:/CONTAINER[:ro]` bind mounts of a compose file: (host, container).
fn bind_mounts(compose: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|l| l.trim_matches('"'))
        .filter(|l| l.starts_with("./") || l.starts_with("../"))
        .map(|l| {
            let mut parts = l.split(':');
            (
                parts.next().unwrap().to_string(),
                parts.next().expect("HOST:CONTAINER").to_string(),
            )
        })
        .collect()
}

/// The host file behind a container path, through the bind mounts (the longest match wins).
fn host_path(deploy: &Path, mounts: &[(String, String)], in_container: &str) -> Option<PathBuf> {
    mounts
        .iter()
        .filter_map(|(host, target)| {
            let rest = in_container.strip_prefix(target.as_str())?;
            let path = match rest.strip_prefix('/') {
                _ if rest.is_empty() => deploy.join(host),
                Some(rest) => deploy.join(host).join(rest),
                None => return None,
            };
            Some((target.len(), path))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p)
}

#[test]
fn compose_mounts_existing_files_and_creates_every_topic() {
    let deploy = deploy_dir();
    let compose = read(&deploy.join("compose.yaml"));
    let dockerfile = read(&deploy.join("Dockerfile"));

    // The build: context and Dockerfile exist.
    let context = yaml_values(&compose, "context");
    assert_eq!(context.len(), 1, "{context:?}");
    let context = deploy.join(&context[0]);
    let file = yaml_values(&compose, "dockerfile")[0].clone();
    assert!(context.join(&file).is_file(), "build {}", file);
    assert!(
        context.join("Cargo.lock").is_file(),
        "the context is the workspace"
    );

    // Every bind mount's host side exists.
    let mounts = bind_mounts(&compose);
    assert!(!mounts.is_empty());
    for (host, _) in &mounts {
        assert!(
            deploy.join(host).exists(),
            "compose mounts {host}, which does not exist"
        );
    }

    // The config the image's CMD names is mounted, and so is everything it names.
    let config_in_container = "/etc/onetruth/onetruth.toml";
    assert!(
        dockerfile.contains(&format!(
            "CMD [\"--config\", \"{config_in_container}\", \"run\"]"
        )),
        "the Dockerfile's CMD reads {config_in_container}"
    );
    let config = host_path(&deploy, &mounts, config_in_container)
        .unwrap_or_else(|| panic!("{config_in_container} is not mounted"));
    assert!(config.is_file(), "{}", config.display());
    let config_dir = Path::new(config_in_container).parent().unwrap();
    let mut kafka_topics = BTreeSet::new();
    let mut brokers = BTreeSet::new();
    for c in strings(&toml(&config)["daemon"]["connectors"]) {
        let in_container = config_dir.join(&c);
        let manifest = host_path(&deploy, &mounts, in_container.to_str().unwrap())
            .unwrap_or_else(|| panic!("connector {} is not mounted", in_container.display()));
        assert!(manifest.is_file(), "{}", manifest.display());
        let m = toml(&manifest);
        let t = &m["transport"];
        match t["type"].as_str().unwrap_or("file") {
            "kafka" => {
                kafka_topics.extend(strings(&t["topics"]));
                kafka_topics.extend(t["dead_letter_topic"].as_str().map(str::to_string));
                brokers.insert(t["brokers"].as_str().unwrap().to_string());
            }
            "file" => {
                let inbox = t["inbox"].as_str().expect("a file connector with an inbox");
                let inbox = in_container.parent().unwrap().join(inbox);
                let host = host_path(&deploy, &mounts, inbox.to_str().unwrap())
                    .unwrap_or_else(|| panic!("inbox {} is not mounted", inbox.display()));
                assert!(host.is_dir(), "inbox {} on the host", host.display());
                assert!(
                    dockerfile.contains(inbox.to_str().unwrap()),
                    "the image creates the inbox {}",
                    inbox.display()
                );
            }
            other => panic!("unexpected transport {other}"),
        }
    }

    // The brokers the manifests name are the compose broker's advertised listener, and every
    // topic they read or dead-letter into is created by the one-shot service.
    assert!(!kafka_topics.is_empty());
    for b in &brokers {
        assert!(
            compose.contains(&format!("PLAINTEXT://{b}")),
            "manifests connect to {b}, which the compose broker does not advertise"
        );
    }
    let created: BTreeSet<String> = compose
        .split("--topic ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect();
    for t in &kafka_topics {
        assert!(
            created.contains(t),
            "compose does not create topic {t}: {created:?}"
        );
    }
    for condition in ["service_healthy", "service_completed_successfully"] {
        assert!(compose.contains(condition), "depends_on with {condition}");
    }
    // Docker's 10 s default stop timeout would cut the 30 s drain short.
    assert!(compose.contains("stop_grace_period: 40s"));
}

#[test]
fn deploy_readme_lists_every_file() {
    let deploy = deploy_dir();
    let readme = read(&deploy.join("README.md"));
    let mut files = Vec::new();
    let mut stack = vec![deploy.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(&deploy).unwrap().display().to_string();
            if p.is_dir() {
                // What a user drops into the compose inbox is not part of deploy/.
                if name != "inbox" {
                    stack.push(p);
                }
            } else if name != "README.md" {
                files.push(name);
            }
        }
    }
    // The inbox directory ships empty (a .gitkeep keeps it in git).
    assert!(deploy.join("inbox/billing").is_dir());
    files.push("inbox/billing/".into());
    for f in files {
        assert!(
            readme.contains(&format!("`{f}`")),
            "deploy/README.md does not list `{f}`"
        );
    }
}
