//! The `gatehouse` binary: `serve` runs a node; every other command is either offline
//! (`spec lint`, `spec diff`) or a client of the admin API (`--admin-url`, `GATEHOUSE_TOKEN`).
//!
//! Exit codes: 0 ok, 1 a finding (lint error, breaking change), 2 usage or connection error.

mod cli;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
