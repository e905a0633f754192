//! The file transport's sources: named files read once (`onetruth ingest`), or an inbox
//! directory the daemon watches (`onetruth run`). Each file is a stream whose checkpoint says
//! how far it was read (`reading:LINE:SIZE:MTIME`) or that it was read to its end
//! (`done:...`), so a restart resumes after the last committed line and a finished export is
//! not taken twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use onetruth_connect::{
    Checkpoint, Checkpoints, Poll, Progress, ProgressUnit, RawBatch, Source, SourceContext,
    SourceError, TypedSourceFactory,
};

use crate::{FileFormat, FileParams, FileSource};

/// `type = "file"`.
pub struct FileTransport;

impl TypedSourceFactory for FileTransport {
    type Params = FileParams;
    const TYPE: &'static str = "file";

    fn validate(&self, params: &FileParams) -> Vec<String> {
        params.problems()
    }

    fn create(
        &self,
        params: &FileParams,
        ctx: SourceContext,
    ) -> Result<Box<dyn Source>, SourceError> {
        if !ctx.files.is_empty() {
            return Ok(Box::new(FilesSource::open(&ctx.files, params)?));
        }
        let Some(inbox) = &params.inbox else {
            return Err(SourceError::new(
                format!("connector {}", ctx.connector),
                "the file transport needs files to read: name them on the command line, or set transport.inbox for the daemon",
            ));
        };
        let stored = ctx.checkpoints.checkpoints()?;
        Ok(Box::new(InboxSource::new(
            ctx.base_dir.join(inbox),
            params.clone(),
            stored,
        )?))
    }
}

/// What a file stream's checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    stage: Stage,
    /// The line of the last record committed.
    line: u64,
    /// The file as it was read: a file with another size or time is another export.
    identity: Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Reading,
    Done,
    /// Reading failed (a corrupt file); not read again until it changes.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Identity {
    size: u64,
    /// Modification time, ms since the epoch.
    mtime_ms: i64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Identity {
            size: meta.len(),
            mtime_ms,
        }
    }
}

impl FileState {
    fn encode(&self) -> String {
        let stage = match self.stage {
            Stage::Reading => "reading",
            Stage::Done => "done",
            Stage::Failed => "failed",
        };
        format!(
            "{stage}:{}:{}:{}",
            self.line, self.identity.size, self.identity.mtime_ms
        )
    }

    fn decode(s: &str) -> Option<FileState> {
        let mut parts = s.split(':');
        let stage = match parts.next()? {
            "reading" => Stage::Reading,
            "done" => Stage::Done,
            "failed" => Stage::Failed,
            _ => return None,
        };
        let line = parts.next()?.parse().ok()?;
        let size = parts.next()?.parse().ok()?;
        let mtime_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(FileState {
            stage,
            line,
            identity: Identity { size, mtime_ms },
        })
    }
}

/// One file being read, with its stream name and identity.
struct OpenFile {
    stream: String,
    source: FileSource,
    identity: Identity,
    /// Records up to this line were committed before (a resumed file): skipped.
    skip_through: u64,
}

impl OpenFile {
    fn open(path: &Path, stream: String, params: &FileParams) -> Result<OpenFile, SourceError> {
        let source = FileSource::open(path, params)?;
        let identity = std::fs::metadata(path)
            .map(|m| Identity::of(&m))
            .map_err(|e| SourceError::new(path.display().to_string(), e))?;
        Ok(OpenFile {
            stream,
            source,
            identity,
            skip_through: 0,
        })
    }

    /// The next batch of the file, with its checkpoint (`done` once read to the end).
    fn read(&mut self, max: usize) -> Result<RawBatch, SourceError> {
        let mut records = Vec::new();
        while records.is_empty() && !self.source.is_done() {
            records = self.source.read(max)?;
            if self.skip_through > 0 {
                // Committed before: positions end in `:LINE`.
                let skip = self.skip_through;
                records.retain(|r| {
                    r.position
                        .0
                        .rsplit(':')
                        .next()
                        .and_then(|l| l.parse::<u64>().ok())
                        .is_none_or(|line| line > skip)
                });
            }
        }
        let state = FileState {
            stage: if self.source.is_done() {
                Stage::Done
            } else {
                Stage::Reading
            },
            line: self.source.line(),
            identity: self.identity,
        };
        Ok(RawBatch {
            records,
            checkpoints: vec![Checkpoint::new(self.stream.clone(), state.encode())],
            ack: None,
        })
    }
}

/// The files named on the command line, read once each, in order, from their first line.
pub struct FilesSource {
    files: Vec<OpenFile>,
    next: usize,
    total_bytes: u64,
}

impl FilesSource {
    /// Open every file first, so a typo in the last path fails before anything is written.
    pub fn open(paths: &[PathBuf], params: &FileParams) -> Result<FilesSource, SourceError> {
        let files = paths
            .iter()
            .map(|p| OpenFile::open(p, p.display().to_string(), params))
            .collect::<Result<Vec<_>, _>>()?;
        let total_bytes = files.iter().map(|f| f.source.bytes().1).sum();
        Ok(FilesSource {
            files,
            next: 0,
            total_bytes,
        })
    }
}

impl Source for FilesSource {
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let Some(file) = self.files.get_mut(self.next) else {
            return Ok(Poll::End);
        };
        let batch = file.read(max)?;
        if file.source.is_done() {
            self.next += 1;
        }
        Ok(Poll::Records(batch))
    }

    fn progress(&self) -> Option<Progress> {
        let done = self.files.iter().map(|f| f.source.bytes().0).sum();
        Some(Progress {
            done,
            total: self.total_bytes,
            unit: ProgressUnit::Bytes,
        })
    }
}

/// Watches a directory: every new file is read once, resuming after its last committed line.
pub struct InboxSource {
    dir: PathBuf,
    params: FileParams,
    poll_interval: Duration,
    settle: Duration,
    /// Every file's last known state: stored at start, then as batches are yielded.
    states: HashMap<String, FileState>,
    /// Files seen but not settled yet: identity and when it was first seen so.
    settling: HashMap<String, (Identity, std::time::Instant)>,
    current: Option<OpenFile>,
}

impl InboxSource {
    pub fn new(
        dir: PathBuf,
        params: FileParams,
        stored: Checkpoints,
    ) -> Result<InboxSource, SourceError> {
        // A missing directory is not an error here: it may be mounted or created later, and
        // until then each scan fails and is retried (the connector shows `retrying`).
        if dir.exists() && !dir.is_dir() {
            return Err(SourceError::new(
                format!("inbox {}", dir.display()),
                "is not a directory",
            ));
        }
        let mut states = HashMap::new();
        for (stream, position) in stored {
            match FileState::decode(&position) {
                Some(s) => {
                    states.insert(stream, s);
                }
                None => tracing::warn!(
                    inbox = %dir.display(),
                    stream,
                    "unreadable file checkpoint ignored"
                ),
            }
        }
        Ok(InboxSource {
            poll_interval: Duration::from_millis(params.poll_interval_ms.unwrap_or(1000)),
            settle: Duration::from_millis(params.settle_ms.unwrap_or(1000)),
            dir,
            params,
            states,
            settling: HashMap::new(),
            current: None,
        })
    }

    /// Whether the inbox takes a file of this name.
    fn wants(&self, name: &str) -> bool {
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
            return false;
        }
        match &self.params.pattern {
            Some(p) => glob_match(p, name),
            None => {
                self.params.format.is_some() || FileFormat::from_path(Path::new(name)).is_some()
            }
        }
    }

    /// The next file to read, if one is new and settled.
    fn next_file(&mut self) -> Result<Option<(String, Identity)>, SourceError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| SourceError::retryable(format!("inbox {}", self.dir.display()), e))?;
        let mut ready = Vec::new();
        let now = std::time::Instant::now();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !self.wants(&name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let identity = Identity::of(&meta);
            let taken = self.states.get(&name).is_some_and(|s| {
                s.identity == identity && matches!(s.stage, Stage::Done | Stage::Failed)
            });
            if taken {
                self.settling.remove(&name);
                continue;
            }
            // Settled: unchanged since first seen so, for `settle`.
            let first_seen = match self.settling.get(&name) {
                Some((seen, at)) if *seen == identity => *at,
                _ => {
                    self.settling.insert(name.clone(), (identity, now));
                    now
                }
            };
            if now.duration_since(first_seen) >= self.settle {
                ready.push((identity.mtime_ms, name, identity));
            }
        }
        // Oldest export first.
        ready.sort();
        Ok(ready.into_iter().next().map(|(_, name, id)| (name, id)))
    }
}

impl Source for InboxSource {
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        if self.current.is_none() {
            let Some((name, identity)) = self.next_file()? else {
                return Ok(Poll::Idle(self.poll_interval));
            };
            self.settling.remove(&name);
            let path = self.dir.join(&name);
            match OpenFile::open(&path, name.clone(), &self.params) {
                Ok(mut file) => {
                    if let Some(s) = self.states.get(&name)
                        && s.stage == Stage::Reading
                        && s.identity == file.identity
                    {
                        file.skip_through = s.line;
                    }
                    tracing::info!(inbox = %self.dir.display(), file = %name, resume_after_line = file.skip_through, "reading inbox file");
                    self.current = Some(file);
                }
                Err(e) => return Ok(Poll::Records(self.failed(name, identity, 0, &e))),
            }
        }
        let file = self.current.as_mut().expect("opened above");
        match file.read(max) {
            Ok(batch) => {
                let state = FileState {
                    stage: if file.source.is_done() {
                        Stage::Done
                    } else {
                        Stage::Reading
                    },
                    line: file.source.line(),
                    identity: file.identity,
                };
                self.states.insert(file.stream.clone(), state);
                if file.source.is_done() {
                    tracing::info!(inbox = %self.dir.display(), file = %file.stream, lines = file.source.line(), "inbox file read");
                    self.current = None;
                }
                Ok(Poll::Records(batch))
            }
            Err(e) => {
                let (name, identity, line) =
                    (file.stream.clone(), file.identity, file.source.line());
                self.current = None;
                Ok(Poll::Records(self.failed(name, identity, line, &e)))
            }
        }
    }
}

impl InboxSource {
    /// A file that cannot be read is logged and marked, and the inbox goes on with the next
    /// one; it is read again once it changes.
    fn failed(&mut self, name: String, identity: Identity, line: u64, e: &SourceError) -> RawBatch {
        tracing::error!(inbox = %self.dir.display(), file = %name, line, error = %e, "inbox file failed; skipped until it changes");
        let state = FileState {
            stage: Stage::Failed,
            line,
            identity,
        };
        self.states.insert(name.clone(), state);
        RawBatch {
            records: Vec::new(),
            checkpoints: vec![Checkpoint::new(name, state.encode())],
            ack: None,
        }
    }
}

/// `*` matches any run of characters, `?` one; everything else itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
