//! `onetruth-sample`: write the bundled demo exports or benchmark input.

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
