//! The `greenlight` command line: dispatch only; the work lives in the library.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Greenlight promotes releases through environments only when their gates pass.
#[derive(Parser)]
#[command(name = "greenlight", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (the content of crds/).
    Crds,
    /// Validate Pipelines, Releases and Approvals offline: schema, CEL rules, upstream
    /// graph, cron, time zones, durations, Job templates and references between objects.
    Check {
        /// Files or directories (searched recursively for .yaml, .yml and .json); `-` reads
        /// standard input.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", greenlight::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check { files } => {
            let report = greenlight::check::check_paths(&files);
            print!("{}", report.render());
            if report.errors() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
