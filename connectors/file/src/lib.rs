//! The file transport: CSV with a header row, or JSON Lines; either optionally gzipped.
//!
//! Each line becomes a [`RawRecord`] whose position is `path:line`. A JSONL line is yielded as its
//! text ([`RawBody::Json`]): the mapper parses it, and quarantines one that is not a JSON object.
//! A CSV row that cannot be read (the wrong number of fields) or a line that is not UTF-8 is
//! yielded as [`RawBody::Malformed`] with its text, so the daemon quarantines it and carries on.
//!
//! [`FileTransport`] makes sources of it: the files named on the command line, read once
//! ([`FilesSource`]), or a watched inbox directory ([`InboxSource`]).

mod transport;

pub use transport::{FileTransport, FilesSource, InboxSource};

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use onetruth_connect::{Position, RawBody, RawRecord, SourceError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// File transport settings, from the manifest's `transport` table (`type = "file"`, the
/// default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    /// `csv` or `jsonl`; by default from the file extension (`.csv`, `.jsonl`, `.ndjson`,
    /// `.json`, each with an optional `.gz`).
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// CSV field delimiter, one ASCII character (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// For `onetruth run`: a directory the daemon watches (relative to the manifest's
    /// directory). Each new file in it is ingested
    /// once (resuming after its last committed line if the daemon stopped halfway); a file
    /// that reappears with another size or modification time is a new export and is read
    /// again. Files whose names start with `.` or end with `.tmp` or `.part` are skipped.
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// Only files whose names match this pattern (`*` any run of characters, `?` one
    /// character), e.g. `contacts-*.csv.gz`. Default: every file with a known extension.
    #[serde(default)]
    pub pattern: Option<String>,
    /// How often the inbox is scanned for new files, in milliseconds (default 1000).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// A file is read only once its size and modification time have not changed for this many
    /// milliseconds, so a file still being copied in is not read half-written (default 1000).
    #[serde(default)]
    pub settle_ms: Option<u64>,
}

impl FileParams {
    /// The params of a manifest's `transport` value, read as the registry reads them (for
    /// tools and tests that use the file transport alone).
    pub fn from_manifest(transport: Option<&Value>) -> Result<FileParams, Vec<String>> {
        let mut registry = onetruth_connect::Registry::new();
        registry.register(FileTransport);
        let transport = registry.transport(transport)?;
        transport.params::<FileParams>().cloned().ok_or_else(|| {
            vec![format!(
                "transport.type: `{}` is not the file transport",
                transport.kind()
            )]
        })
    }

    /// Checks serde cannot make, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.delimiter.is_some_and(|d| !d.is_ascii()) {
            errors.push("transport.delimiter: must be a single ASCII character".into());
        }
        if self
            .inbox
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            errors.push("transport.inbox: must be a directory path".into());
        }
        if self.poll_interval_ms == Some(0) {
            errors.push("transport.poll_interval_ms: must be at least 1".into());
        }
        errors
    }
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
}

impl FileFormat {
    /// The format a path's extension names, looking through `.gz`.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
            Some(FileFormat::Jsonl)
        } else {
            None
        }
    }
}

/// Counts bytes read from the underlying file, for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Reader {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        headers: Vec<String>,
        record: csv::StringRecord,
    },
    Jsonl {
        reader: Box<dyn BufRead + Send>,
        line: String,
    },
}

/// Reads one file.
pub struct FileSource {
    path: PathBuf,
    /// `path` as shown in positions.
    path_text: String,
    reader: Reader,
    line: u64,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
    done: bool,
}

impl FileSource {
    /// Open `path`; the format comes from `params` or the extension.
    pub fn open(path: &Path, params: &FileParams) -> Result<FileSource, SourceError> {
        let ctx = || path.display().to_string();
        let format = params.format.or_else(|| FileFormat::from_path(path)).ok_or_else(|| {
            SourceError::new(
                ctx(),
                "cannot tell the format from the extension: use .csv, .jsonl (optionally .gz) or set transport.format",
            )
        })?;
        let file = File::open(path).map_err(|e| SourceError::new(ctx(), e))?;
        let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: file,
            count: bytes_read.clone(),
        };
        let gz = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        let raw: Box<dyn Read + Send> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                counted,
            )))
        } else {
            Box::new(counted)
        };
        let mut line = 0;
        let reader = match format {
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .delimiter(params.delimiter.map(|c| c as u8).unwrap_or(b','))
                    .from_reader(raw);
                let headers = reader
                    .headers()
                    .map_err(|e| SourceError::new(format!("{}: header row", ctx()), e))?
                    .iter()
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
                    .collect();
                line = 1;
                Reader::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                }
            }
            FileFormat::Jsonl => Reader::Jsonl {
                reader: Box::new(BufReader::with_capacity(1 << 16, raw)),
                line: String::new(),
            },
        };
        Ok(FileSource {
            path_text: path.display().to_string(),
            path: path.to_path_buf(),
            reader,
            line,
            bytes_read,
            total_bytes,
            done: false,
        })
    }

    fn position(&self) -> Position {
        // Once per record: plain pushes, not the formatting machinery.
        let line = self.line.to_string();
        let mut s = String::with_capacity(self.path_text.len() + 1 + line.len());
        s.push_str(&self.path_text);
        s.push(':');
        s.push_str(&line);
        Position(s)
    }
}

impl FileSource {
    /// Read up to `max` records; none once the file is read to its end.
    pub fn read(&mut self, max: usize) -> Result<Vec<RawRecord>, SourceError> {
        let mut out = Vec::with_capacity(max.min(4096));
        while out.len() < max && !self.done {
            let (body, text) = match &mut self.reader {
                Reader::Csv {
                    reader,
                    headers,
                    record,
                } => match reader.read_record(record) {
                    Ok(false) => {
                        self.done = true;
                        break;
                    }
                    Ok(true) => {
                        self.line = record.position().map(|p| p.line()).unwrap_or(self.line + 1);
                        if record.len() != headers.len() {
                            (
                                RawBody::Malformed {
                                    text: record.iter().collect::<Vec<_>>().join(","),
                                    reason: format!(
                                        "csv row has {} fields, header has {}",
                                        record.len(),
                                        headers.len()
                                    ),
                                },
                                None,
                            )
                        } else {
                            let mut obj = Map::with_capacity(headers.len());
                            for (h, v) in headers.iter().zip(record.iter()) {
                                obj.insert(h.clone(), Value::String(v.to_string()));
                            }
                            (RawBody::Parsed(obj), None)
                        }
                    }
                    Err(e) if e.is_io_error() => {
                        return Err(SourceError::new(self.path.display().to_string(), e));
                    }
                    Err(e) => {
                        self.line += 1;
                        (
                            RawBody::Malformed {
                                text: String::new(),
                                reason: format!("csv: {e}"),
                            },
                            None,
                        )
                    }
                },
                Reader::Jsonl { reader, line } => {
                    line.clear();
                    match reader.read_line(line) {
                        Ok(0) => {
                            self.done = true;
                            break;
                        }
                        Ok(_) => {
                            self.line += 1;
                            let text = line.trim();
                            if text.is_empty() {
                                continue;
                            }
                            // Parsed by the mapper, which borrows the strings from the
                            // line instead of copying them into a tree; kept as the raw
                            // payload, exactly as it came.
                            (RawBody::Json(text.to_string()), None)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            // Not UTF-8: keep the line number and move on.
                            self.line += 1;
                            (
                                RawBody::Malformed {
                                    text: String::new(),
                                    reason: "line is not valid utf-8".into(),
                                },
                                None,
                            )
                        }
                        Err(e) => return Err(SourceError::new(self.path.display().to_string(), e)),
                    }
                }
            };
            out.push(RawRecord {
                position: self.position(),
                body,
                text,
                meta: None,
            });
        }
        Ok(out)
    }

    /// (bytes read, file size): for a compressed file, compressed bytes.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_read.load(Ordering::Relaxed), self.total_bytes)
    }

    /// Whether the file is read to its end.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The line of the last record read (the header is line 1 of a CSV file).
    pub fn line(&self) -> u64 {
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path) -> Vec<RawRecord> {
        let mut s = FileSource::open(path, &FileParams::default()).unwrap();
        let mut all = Vec::new();
        loop {
            let batch = s.read(2).unwrap();
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        all
    }

    #[test]
    fn csv_rows_become_objects_and_short_rows_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "\u{feff}id,email\n1,a@x.com\n2\n3,\"c@x.com\"\n").unwrap();
        let all = read_all(&p);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].position.0, format!("{}:2", p.display()));
        let RawBody::Parsed(o) = &all[0].body else {
            panic!("row 1 parsed")
        };
        assert_eq!(o["id"], "1");
        assert!(
            matches!(&all[1].body, RawBody::Malformed { reason, .. } if reason.contains("1 fields"))
        );
        assert!(matches!(&all[2].body, RawBody::Parsed(o) if o["email"] == "c@x.com"));
    }

    #[test]
    fn gzipped_jsonl_lines_come_through_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all(b"{\"id\":1}\n{not json\n\n[1]\n{\"id\":2}\n")
            .unwrap();
        gz.finish().unwrap();
        let all = read_all(&p);
        // Blank lines are skipped; bad lines come through as text, for the mapper to refuse.
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].body, RawBody::Json("{\"id\":1}".into()));
        assert_eq!(all[1].body, RawBody::Json("{not json".into()));
        assert_eq!(all[2].body, RawBody::Json("[1]".into()));
        assert_eq!(all[3].position.0, format!("{}:5", p.display()));
    }

    #[test]
    fn a_jsonl_line_is_kept_as_delivered_and_csv_rows_have_no_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        std::fs::write(&p, "  {\"z\": 1, \"a\": 1.50}\r\n{oops\n").unwrap();
        let all = read_all(&p);
        // Key order, spacing and number spelling survive; only the line's ends are trimmed.
        assert_eq!(all[0].body, RawBody::Json("{\"z\": 1, \"a\": 1.50}".into()));
        assert_eq!(all[1].body, RawBody::Json("{oops".into()));
        assert_eq!(all[0].text, None, "the text is the body");
        let c = dir.path().join("x.csv");
        std::fs::write(&c, "id\n1\n").unwrap();
        assert_eq!(read_all(&c)[0].text, None);
    }

    #[test]
    fn unknown_extension_and_bad_params_are_clear_errors() {
        let err = FileSource::open(Path::new("data.txt"), &FileParams::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot tell the format"), "{err}");
        let bad = serde_json::json!({"fromat": "csv"});
        let err = serde_json::from_value::<FileParams>(bad).unwrap_err();
        assert!(err.to_string().contains("fromat"), "{err}");
    }
}
