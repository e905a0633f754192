//! `onetruth-sample`: write the bundled demo exports, benchmark input, or the quality benchmark
//! (and score a resolver's links against its truth).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "onetruth-sample",
    version,
    about = "Deterministic sample data for onetruth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the demo exports (crm.csv, billing.jsonl, helpdesk.csv, calls.csv) into a directory.
    Demo {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write CRM-like JSON lines for a throughput benchmark (see bench.toml for the manifest).
    Bench {
        /// How many records.
        #[arg(long)]
        records: u64,
        /// File to write; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed; the same seed and count always give the same bytes.
        #[arg(long, default_value_t = onetruth_sample::BENCH_SEED)]
        seed: u64,
    },
    /// Quality benchmark: generate multi-source records with ground truth, or score links.
    Quality {
        #[command(subcommand)]
        command: QualityCommand,
    },
}

#[derive(Subcommand)]
enum QualityCommand {
    /// Write crm.csv, billing.jsonl, helpdesk.csv, phone.csv, truth.csv and the four manifests
    /// (crm.toml...) into a directory, and print what was generated.
    Generate {
        /// How many people (about 2.5 records each).
        #[arg(long)]
        people: usize,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Seed; the same seed and size always give the same bytes.
        #[arg(long, default_value_t = onetruth_sample::QUALITY_SEED)]
        seed: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score links (`onetruth export links --format csv`) against truth.csv: pairwise
    /// precision, recall and F1, over-merge rate per trap class, under-merge rate.
    Score {
        /// truth.csv written by `quality generate`.
        #[arg(long)]
        truth: PathBuf,
        /// The links export: source,source_id,customer_id.
        #[arg(long)]
        links: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &std::path::Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn quality(command: QualityCommand) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        QualityCommand::Generate {
            people,
            out,
            seed,
            json,
        } => {
            let (paths, summary) = onetruth_sample::write_quality(&out, people, seed)?;
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
            if json {
                serde_json::to_writer_pretty(&mut stdout, &summary)
                    .map_err(std::io::Error::other)?;
                writeln!(stdout)
            } else {
                write!(stdout, "{}", summary.table())
            }
        }
        QualityCommand::Score { truth, links, json } => {
            let truth = onetruth_sample::read_truth(&read(&truth)?).map_err(invalid)?;
            let links = onetruth_sample::read_links(&read(&links)?).map_err(invalid)?;
            let score = onetruth_sample::score(&truth, &links);
            if json {
                serde_json::to_writer_pretty(&mut stdout, &score).map_err(std::io::Error::other)?;
                writeln!(stdout)
            } else {
                write!(stdout, "{}", score.table())
            }
        }
    }
}

fn run(cli: Cli) -> std::io::Result<()> {
    match cli.command {
        Command::Demo { out } => {
            for path in onetruth_sample::write_demo(&out)? {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Bench { records, out, seed } => match out {
            Some(path) => {
                let file = std::fs::File::create(&path)?;
                onetruth_sample::write_bench(file, records, seed)
            }
            None => {
                let stdout = std::io::stdout().lock();
                onetruth_sample::write_bench(stdout, records, seed)
            }
        },
        Command::Quality { command } => quality(command),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // `bench ... | head` closes the pipe early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "onetruth-sample: {e}");
            ExitCode::FAILURE
        }
    }
}
