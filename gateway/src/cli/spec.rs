//! The offline spec commands, `gatehouse spec lint` and `gatehouse spec diff`: the publish
//! gate's lint and compatibility checks run on files, for CI, without an admin API.
//!
//! Exit codes: 0 clean, 1 a finding (a lint rule of severity error failed; a change at or
//! above `--fail-on`), 2 a usage error or a file that cannot be read or is not a valid
//! OpenAPI document (returned as an error, which `main` prints and maps to 2).

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use gatehouse_policies::diff::{self, Date, FailOn};
use gatehouse_policies::document::Limits;
use gatehouse_policies::lint::{self, LintOptions, LintReport, Ruleset};
use gatehouse_policies::openapi::{self, Document};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Lint a spec against the governance ruleset; exit 1 when a rule of severity error
    /// fails.
    Lint {
        /// The OpenAPI document (YAML or JSON).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// A YAML ruleset overriding the built-in severities (`rules: {id: error|warning|info|off}`).
        #[arg(long)]
        ruleset: Option<PathBuf>,
        /// The API is sold under a rate-limit plan: every operation must document 429.
        /// The publish gate always lints with this set.
        #[arg(long)]
        has_plan: bool,
    },
    /// Compare two versions of a spec; exit 1 on a breaking change (see `--fail-on`).
    Diff {
        /// The version consumers use today.
        old: PathBuf,
        /// The proposed version.
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// The least severe change that fails (exit 1).
        #[arg(long, value_enum, default_value_t = FailOnArg::Breaking)]
        fail_on: FailOnArg,
        /// The date against which `x-sunset` dates of removed deprecated operations are
        /// judged (YYYY-MM-DD; default: today, UTC).
        #[arg(long)]
        today: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    Breaking,
    Warning,
    Never,
}

impl From<FailOnArg> for FailOn {
    fn from(f: FailOnArg) -> FailOn {
        match f {
            FailOnArg::Breaking => FailOn::Breaking,
            FailOnArg::Warning => FailOn::Warning,
            FailOnArg::Never => FailOn::Never,
        }
    }
}

/// Runs a spec command. `Err` is a usage or input error (exit 2).
pub fn run(cmd: &SpecCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SpecCommand::Lint {
            file,
            format,
            ruleset,
            has_plan,
        } => {
            let ruleset = match ruleset {
                None => Ruleset::builtin(),
                Some(path) => Ruleset::from_yaml(&read(path)?)
                    .with_context(|| format!("{} is not a valid ruleset", path.display()))?,
            };
            let report = lint_file(file, &ruleset, *has_plan)?;
            match format {
                LintFormat::Text => print!("{}", report.to_text()),
                LintFormat::Json => println!("{}", pretty(&report.to_json())),
            }
            Ok(exit(report.has_errors()))
        }
        SpecCommand::Diff {
            old,
            new,
            format,
            fail_on,
            today,
        } => {
            let today = match today {
                Some(text) => text
                    .parse::<Date>()
                    .with_context(|| format!("--today `{text}` is not a date (YYYY-MM-DD)"))?,
                None => {
                    let now = time::OffsetDateTime::now_utc();
                    Date::new(now.year(), u8::from(now.month()), now.day())
                        .context("the system date is out of range")?
                }
            };
            let old_doc = parse_file(old)?;
            let new_doc = parse_file(new)?;
            let report = diff::diff_with(&old_doc, &new_doc, &diff::Options { today: Some(today) });
            match format {
                DiffFormat::Text => print!("{}", report.to_text()),
                DiffFormat::Json => println!("{}", pretty(&report.to_json())),
                DiffFormat::Markdown => print!("{}", report.to_markdown()),
            }
            Ok(exit(report.fails((*fail_on).into())))
        }
    }
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_file(path: &Path) -> anyhow::Result<Document> {
    openapi::parse(&read(path)?, &Limits::default())
        .with_context(|| format!("{} is not a valid OpenAPI document", path.display()))
}

/// Lints a file. A spec refused at ingest only for a rule the lint also has (a version
/// that is not semver) is reported as that rule's finding, in the lint's own format.
fn lint_file(path: &Path, ruleset: &Ruleset, has_plan: bool) -> anyhow::Result<LintReport> {
    let bytes = read(path)?;
    match openapi::parse(&bytes, &Limits::default()) {
        Ok(doc) => Ok(lint::lint(&doc, ruleset, &LintOptions { has_plan })),
        Err(e) => match lint::finding_for_spec_error(&e) {
            Some(finding) if ruleset.severity(finding.rule).is_some() => {
                let severity = ruleset.severity(finding.rule).unwrap_or(finding.severity);
                Ok(LintReport::new(vec![lint::LintFinding {
                    severity,
                    ..finding
                }]))
            }
            _ => Err(anyhow::Error::new(e).context(format!(
                "{} is not a valid OpenAPI document",
                path.display()
            ))),
        },
    }
}
