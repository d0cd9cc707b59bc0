//! The command line: flags, dispatch, and output (tables for people, `--output json` for
//! scripts).

mod client;
mod spec;

use crate::serve;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use client::{AdminClient, ClientError};
use comfy_table::Table;
use gatehouse_gateway::config::ServeArgs;
use gatehouse_registry::catalog;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Gatehouse: an API governance gateway with a schema registry.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The admin API of client commands.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    admin_url: String,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and the admin API.
    Serve(ServeArgs),
    /// Offline checks of spec files (no admin API): lint and breaking-change diff.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Reconcile the registry to a declarative catalog file.
    Apply {
        /// The catalog (YAML or JSON); spec paths are relative to it.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Print the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Admin-API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Owning teams.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Capability APIs.
    #[command(subcommand)]
    Apis(ApisCommand),
    /// Versions of an API and their lifecycle.
    #[command(subcommand)]
    Versions(VersionsCommand),
    /// Which system is authoritative for which business entity.
    #[command(subcommand, name = "systems-of-record")]
    SystemsOfRecord(SystemsOfRecordCommand),
    /// Consumers.
    #[command(subcommand)]
    Consumers(ConsumersCommand),
    /// API keys of consumers.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Trusted JWT issuers.
    #[command(subcommand)]
    Issuers(IssuersCommand),
    /// Auditor queries.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Reports that join runtime traffic with the registry.
    #[command(subcommand)]
    Reports(ReportsCommand),
}

#[derive(Debug, Subcommand)]
enum ReportsCommand {
    /// Per deprecated version: who still calls it, per operation, and the days to sunset.
    Deprecations,
}

/// How `audit access` prints records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccessFormat {
    /// A page as a table (`--limit` records at most).
    Table,
    /// Every matching record as CSV, streamed.
    Csv,
    /// Every matching record as JSON lines, streamed.
    Ndjson,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new admin-API token (shown once).
    Create {
        #[arg(long, value_parser = ["admin", "architect", "owner", "auditor"])]
        role: String,
        /// The team an `owner` token manages.
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TeamsCommand {
    List,
    Create {
        name: String,
        #[arg(long)]
        contact: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApisCommand {
    List,
    Show {
        slug: String,
    },
    Create {
        slug: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        team: String,
        #[arg(long)]
        description: Option<String>,
        /// Allow `API-Version: {major}` routing.
        #[arg(long)]
        version_header: bool,
        #[arg(long)]
        default_major: Option<u64>,
        /// Forward the caller's bearer token to the upstream (API keys never are).
        #[arg(long)]
        forward_bearer: bool,
    },
    /// Set where a major version is served: `--target URL=WEIGHT`, repeatable (e.g. a
    /// legacy and a cloud ERP at 90/10 during a cut-over).
    Upstream {
        slug: String,
        major: u64,
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        #[arg(long)]
        connect_timeout_ms: Option<u32>,
        #[arg(long)]
        read_timeout_ms: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum VersionsCommand {
    List {
        slug: String,
    },
    /// Register a version from a spec file (it starts as a draft) through the publish
    /// gate: validity, lint, compatibility with its major.
    Push {
        slug: String,
        file: PathBuf,
        /// Register it even though it breaks its major (admins only; needs --reason).
        #[arg(long)]
        force: bool,
        /// Why; recorded in the change log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the stored spec, byte for byte.
    Spec {
        slug: String,
        version: String,
    },
    Publish {
        slug: String,
        version: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Deprecate {
        slug: String,
        version: String,
        /// RFC 3339 time or YYYY-MM-DD.
        #[arg(long)]
        sunset: Option<String>,
        #[arg(long)]
        successor: Option<String>,
        #[arg(long)]
        link: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Deprecate past the notice and successor rules (admins only; needs --reason).
        #[arg(long)]
        force: bool,
    },
    Retire {
        slug: String,
        version: String,
        #[arg(long)]
        reason: Option<String>,
        /// Retire before the sunset (admins only; needs --reason).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SystemsOfRecordCommand {
    /// Every declaration, or who is authoritative for one entity (`--entity customer-credit`).
    List {
        #[arg(long)]
        entity: Option<String>,
        /// Only this system (case-insensitive).
        #[arg(long)]
        system: Option<String>,
    },
    /// Replace an API's declarations (none clears them); refused when another API already
    /// claims an entity.
    Set {
        slug: String,
        /// `ENTITY=SYSTEM`, e.g. `inventory-balance=WMS` (repeatable).
        claims: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConsumersCommand {
    List,
    Show {
        name: String,
    },
    Create {
        name: String,
        #[arg(long)]
        contact: Option<String>,
    },
    /// Subscribe a consumer to an API under a plan.
    Subscribe {
        name: String,
        #[arg(long)]
        api: String,
        #[arg(long)]
        plan: String,
        /// Majors covered (repeatable); none means all.
        #[arg(long = "major")]
        majors: Vec<u64>,
        /// Scopes granted (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Issue a key (the secret is printed once).
    Create {
        consumer: String,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
    },
    List {
        consumer: String,
    },
    Revoke {
        consumer: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum IssuersCommand {
    /// Trust a JWT issuer: keys from `--jwks-uri`, inline from `--keys FILE`, or both.
    Add {
        /// The exact `iss` claim value.
        issuer: String,
        /// Accepted `aud` values (repeatable, at least one).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// Allowed algorithms (repeatable): RS256, RS384, RS512, PS256, PS384, PS512,
        /// ES256, ES384, EdDSA, HS256.
        #[arg(long = "algorithm", required = true)]
        algorithms: Vec<String>,
        #[arg(long)]
        jwks_uri: Option<String>,
        /// A JWKS file (`{"keys": [...]}`) of inline keys; HS256 secrets go here.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The claim naming the consumer.
        #[arg(long, value_parser = ["sub", "azp", "client_id"])]
        consumer_claim: Option<String>,
        /// Clock skew allowed on `exp` and `nbf` (default 60).
        #[arg(long)]
        leeway_seconds: Option<u32>,
    },
    List,
    /// Stop trusting an issuer, by id (`iss_…`) or issuer URL.
    Remove {
        issuer: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// The change log.
    Changes {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        target: Option<String>,
        /// RFC 3339 time or YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Walk the change log's hash chain; exit 1 when it is broken. Prints the head hash:
    /// keep it outside the system and pass it back with `--anchor` to detect truncation.
    Verify {
        /// A head hash printed by an earlier `verify`: the log must still contain it.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// The access log: who called what, when, with what outcome.
    Access {
        /// Records of the last DURATION (e.g. 90s, 15m, 24h, 7d).
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Records at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Records before this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        api: Option<String>,
        #[arg(long)]
        major: Option<u64>,
        /// A status (404) or a class (5xx).
        #[arg(long)]
        status: Option<String>,
        /// allowed, refused or failed.
        #[arg(long)]
        decision: Option<String>,
        /// Table: records shown (default 100, at most 1000). Exports: all unless given.
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, value_enum, default_value_t = AccessFormat::Table)]
        format: AccessFormat,
    },
}

/// `90s`, `15m`, `24h`, `7d` as a duration.
fn parse_since(text: &str) -> anyhow::Result<time::Duration> {
    let bad = || anyhow::anyhow!("--since `{text}`: use a number and s, m, h or d (e.g. 24h)");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    Ok(match unit {
        "s" => time::Duration::seconds(n),
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        _ => return Err(bad()),
    })
}

/// A query-string value, percent-encoded except for unreserved characters.
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Serve(args) = &cli.command {
        init_tracing();
        let config = args.resolve()?;
        tracing::info!(?config, "starting");
        serve::run(config)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Spec(cmd) = &cli.command {
        return spec::run(cmd);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let client = AdminClient::new(&cli.admin_url, std::env::var("GATEHOUSE_TOKEN").ok());
    match rt.block_on(client_command(&client, &cli)) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            let finding = e
                .downcast_ref::<ClientError>()
                .and_then(ClientError::problem_type)
                .is_some_and(|t| {
                    t.ends_with(":breaking-change")
                        || t.ends_with(":invalid-spec")
                        || t.ends_with(":lint-failed")
                });
            Ok(ExitCode::from(if finding { 1 } else { 2 }))
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn enc(segment: &str) -> String {
    // Path segments of the admin API: names are kebab-case and versions semver, but never
    // let user input add a segment.
    segment
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('#', "%23")
}

async fn client_command(c: &AdminClient, cli: &Cli) -> anyhow::Result<ExitCode> {
    let out = cli.output;
    match &cli.command {
        Command::Serve(_) | Command::Spec(_) => unreachable_local(),
        Command::Apply { file, dry_run } => {
            let bundle = catalog::load_bundle(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = if *dry_run {
                "/apply?dry_run=true"
            } else {
                "/apply"
            };
            let report = c.post(path, &serde_json::to_value(&bundle)?).await?;
            print_apply(&report, out);
        }
        Command::Token(TokenCommand::Create { role, team }) => {
            let v = c
                .post("/tokens", &json!({"role": role, "team": team}))
                .await?;
            match out {
                Output::Json => print_json(&v),
                Output::Table => println!("{}", v["token"].as_str().unwrap_or_default()),
            }
        }
        Command::Teams(TeamsCommand::List) => {
            let v = c.get("/teams?limit=1000").await?;
            print_items(&v, out, &["name", "contact"]);
        }
        Command::Teams(TeamsCommand::Create { name, contact }) => {
            let v = c
                .post("/teams", &json!({"name": name, "contact": contact}))
                .await?;
            print_object(&v, out);
        }
        Command::Apis(ApisCommand::List) => {
            let v = c.get("/apis?limit=1000").await?;
            print_items(
                &v,
                out,
                &["slug", "title", "team", "default_major", "version_header"],
            );
        }
        Command::Apis(ApisCommand::Show { slug }) => {
            let v = c.get(&format!("/apis/{}", enc(slug))).await?;
            match out {
                Output::Json => print_json(&v),
                Output::Table => {
                    print_object(&without(&v, "versions"), out);
                    println!();
                    print_rows(
                        v["versions"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                        &["version", "major", "state", "sunset_at", "successor"],
                    );
                }
            }
        }
        Command::Apis(ApisCommand::Create {
            slug,
            title,
            team,
            description,
            version_header,
            default_major,
            forward_bearer,
        }) => {
            let v = c
                .post(
                    "/apis",
                    &json!({"slug": slug, "title": title, "team": team, "description": description,
                            "version_header": version_header, "default_major": default_major,
                            "forward_bearer": forward_bearer}),
                )
                .await?;
            print_object(&v, out);
        }
        Command::Apis(ApisCommand::Upstream {
            slug,
            major,
            targets,
            connect_timeout_ms,
            read_timeout_ms,
        }) => {
            let targets = targets
                .iter()
                .map(|t| {
                    let (url, weight) = t.rsplit_once('=').unwrap_or((t.as_str(), "100"));
                    let weight: u32 = weight.parse().map_err(|_| {
                        anyhow::anyhow!("--target {t}: the weight after `=` must be a number")
                    })?;
                    Ok(json!({"url": url, "weight": weight}))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let v = c
                .put(
                    &format!("/apis/{}/majors/{major}/upstream", enc(slug)),
                    &json!({"targets": targets, "connect_timeout_ms": connect_timeout_ms,
                            "read_timeout_ms": read_timeout_ms}),
                )
                .await?;
            print_object(&v, out);
        }
        Command::Versions(cmd) => versions_command(c, cmd, out).await?,
        Command::SystemsOfRecord(SystemsOfRecordCommand::List { entity, system }) => {
            let mut q = String::from("/systems-of-record");
            let mut sep = '?';
            for (k, v) in [("entity", entity), ("system", system)] {
                if let Some(v) = v {
                    q.push_str(&format!(
                        "{sep}{k}={}",
                        enc(v).replace('&', "%26").replace('+', "%2B")
                    ));
                    sep = '&';
                }
            }
            let v = c.get(&q).await?;
            print_items(&v, out, &["entity", "system", "api"]);
        }
        Command::SystemsOfRecord(SystemsOfRecordCommand::Set { slug, claims }) => {
            let mut body = Vec::with_capacity(claims.len());
            for claim in claims {
                let (entity, system) = claim.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("`{claim}` is not ENTITY=SYSTEM (e.g. inventory-balance=WMS)")
                })?;
                body.push(json!({"entity": entity, "system": system}));
            }
            let v = c
                .put(
                    &format!("/apis/{}/systems-of-record", enc(slug)),
                    &Value::Array(body),
                )
                .await?;
            print_items(&v, out, &["entity", "system", "api"]);
        }
        Command::Consumers(cmd) => consumers_command(c, cmd, out).await?,
        Command::Keys(cmd) => keys_command(c, cmd, out).await?,
        Command::Issuers(cmd) => issuers_command(c, cmd, out).await?,
        Command::Audit(AuditCommand::Changes {
            actor,
            action,
            target,
            from,
            limit,
        }) => {
            let mut q = format!("/audit/changes?limit={limit}");
            for (k, v) in [
                ("actor", actor),
                ("action", action),
                ("target", target),
                ("from", from),
            ] {
                if let Some(v) = v {
                    q.push_str(&format!(
                        "&{k}={}",
                        enc(v).replace('&', "%26").replace('+', "%2B")
                    ));
                }
            }
            let v = c.get(&q).await?;
            print_items(
                &v,
                out,
                &["seq", "at", "actor", "role", "action", "target", "reason"],
            );
        }
        Command::Audit(AuditCommand::Verify { anchor }) => {
            let path = match anchor {
                Some(a) => format!("/audit/changes/verify?anchor={}", query_value(a)),
                None => "/audit/changes/verify".to_owned(),
            };
            let v = c.get(&path).await?;
            match out {
                Output::Json => print_json(&v),
                Output::Table => print_verify(&v),
            }
            if v["ok"].as_bool() != Some(true) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit(AuditCommand::Access {
            since,
            from,
            to,
            consumer,
            api,
            major,
            status,
            decision,
            limit,
            format,
        }) => {
            let from = match since {
                Some(s) => Some(
                    (time::OffsetDateTime::now_utc() - parse_since(s)?)
                        .format(&time::format_description::well_known::Rfc3339)?,
                ),
                None => from.clone(),
            };
            let mut q = Vec::new();
            let major = major.map(|m| m.to_string());
            for (k, v) in [
                ("from", from.as_ref()),
                ("to", to.as_ref()),
                ("consumer", consumer.as_ref()),
                ("api", api.as_ref()),
                ("major", major.as_ref()),
                ("status", status.as_ref()),
                ("decision", decision.as_ref()),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", query_value(v)));
                }
            }
            match format {
                AccessFormat::Table => {
                    q.push(format!("limit={}", limit.unwrap_or(100)));
                    let v = c.get(&format!("/audit/access?{}", q.join("&"))).await?;
                    print_access(&v, out);
                }
                AccessFormat::Csv | AccessFormat::Ndjson => {
                    if let Some(l) = limit {
                        q.push(format!("limit={l}"));
                    }
                    let accept = if *format == AccessFormat::Csv {
                        "text/csv"
                    } else {
                        "application/x-ndjson"
                    };
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    c.download(&format!("/audit/access?{}", q.join("&")), accept, &mut lock)
                        .await?;
                }
            }
        }
        Command::Reports(ReportsCommand::Deprecations) => {
            let v = c.get("/reports/deprecations").await?;
            match out {
                Output::Json => print_json(&v),
                Output::Table => print_deprecations(&v),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unreachable_local() -> ! {
    // `run` handles `serve` and `spec` before any client command runs.
    std::process::exit(2)
}

async fn versions_command(
    c: &AdminClient,
    cmd: &VersionsCommand,
    out: Output,
) -> anyhow::Result<()> {
    match cmd {
        VersionsCommand::List { slug } => {
            let v = c.get(&format!("/apis/{}/versions", enc(slug))).await?;
            print_items(
                &v,
                out,
                &[
                    "version",
                    "major",
                    "state",
                    "sunset_at",
                    "successor",
                    "sha256",
                ],
            );
        }
        VersionsCommand::Push {
            slug,
            file,
            force,
            reason,
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let ct = if file.extension().is_some_and(|e| e == "json") {
                "application/json"
            } else {
                "application/yaml"
            };
            let mut query = Vec::new();
            if *force {
                query.push(("force", "true"));
            }
            if let Some(reason) = reason {
                query.push(("reason", reason.as_str()));
            }
            let v = c
                .post_bytes(&format!("/apis/{}/versions", enc(slug)), ct, bytes, &query)
                .await?;
            print_object(&v, out);
        }
        VersionsCommand::Spec { slug, version } => {
            let bytes = c
                .get_raw(&format!(
                    "/apis/{}/versions/{}/spec",
                    enc(slug),
                    enc(version)
                ))
                .await?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
        VersionsCommand::Publish {
            slug,
            version,
            reason,
        } => {
            let v = c
                .post(
                    &format!("/apis/{}/versions/{}/publish", enc(slug), enc(version)),
                    &json!({"reason": reason}),
                )
                .await?;
            print_object(&v, out);
        }
        VersionsCommand::Deprecate {
            slug,
            version,
            sunset,
            successor,
            link,
            reason,
            force,
        } => {
            let sunset = match sunset {
                None => None,
                Some(s) => Some(
                    catalog::parse_instant(s)
                        .ok_or_else(|| {
                            anyhow::anyhow!("--sunset `{s}` is not an RFC 3339 time or a date")
                        })?
                        .format(&time::format_description::well_known::Rfc3339)?,
                ),
            };
            let v = c
                .post(
                    &format!("/apis/{}/versions/{}/deprecate", enc(slug), enc(version)),
                    &json!({"sunset": sunset, "successor": successor, "link": link,
                            "reason": reason, "force": force}),
                )
                .await?;
            print_object(&v, out);
        }
        VersionsCommand::Retire {
            slug,
            version,
            reason,
            force,
        } => {
            let v = c
                .post(
                    &format!("/apis/{}/versions/{}/retire", enc(slug), enc(version)),
                    &json!({"reason": reason, "force": force}),
                )
                .await?;
            print_object(&v, out);
        }
    }
    Ok(())
}

async fn consumers_command(
    c: &AdminClient,
    cmd: &ConsumersCommand,
    out: Output,
) -> anyhow::Result<()> {
    match cmd {
        ConsumersCommand::List => {
            let v = c.get("/consumers?limit=1000").await?;
            print_items(&v, out, &["name", "contact", "created_at"]);
        }
        ConsumersCommand::Show { name } => {
            let v = c.get(&format!("/consumers/{}", enc(name))).await?;
            print_object(&v, out);
        }
        ConsumersCommand::Create { name, contact } => {
            let v = c
                .post("/consumers", &json!({"name": name, "contact": contact}))
                .await?;
            print_object(&v, out);
        }
        ConsumersCommand::Subscribe {
            name,
            api,
            plan,
            majors,
            scopes,
        } => {
            let v = c
                .post(
                    &format!("/consumers/{}/subscriptions", enc(name)),
                    &json!({"api": api, "plan": plan, "majors": majors, "scopes": scopes}),
                )
                .await?;
            print_object(&v, out);
        }
    }
    Ok(())
}

async fn keys_command(c: &AdminClient, cmd: &KeysCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            consumer,
            expires_at,
        } => {
            let v = c
                .post(
                    &format!("/consumers/{}/keys", enc(consumer)),
                    &json!({"expires_at": expires_at}),
                )
                .await?;
            match out {
                Output::Json => print_json(&v),
                Output::Table => {
                    println!("{}", v["key"].as_str().unwrap_or_default());
                    eprintln!(
                        "key id {}: the key is shown once; store it now",
                        v["id"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        KeysCommand::List { consumer } => {
            let v = c.get(&format!("/consumers/{}/keys", enc(consumer))).await?;
            print_items(
                &v,
                out,
                &[
                    "id",
                    "created_at",
                    "expires_at",
                    "revoked_at",
                    "last_used_at",
                ],
            );
        }
        KeysCommand::Revoke { consumer, id } => {
            c.delete(&format!("/consumers/{}/keys/{}", enc(consumer), enc(id)))
                .await?;
            if out == Output::Json {
                print_json(&json!({"revoked": id}));
            } else {
                println!("revoked {id}");
            }
        }
    }
    Ok(())
}

async fn issuers_command(c: &AdminClient, cmd: &IssuersCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        IssuersCommand::Add {
            issuer,
            audiences,
            algorithms,
            jwks_uri,
            keys,
            consumer_claim,
            leeway_seconds,
        } => {
            let keys: Option<Value> = match keys {
                None => None,
                Some(path) => {
                    let text = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(
                        serde_json::from_slice(&text)
                            .with_context(|| format!("{} is not JSON", path.display()))?,
                    )
                }
            };
            let v = c
                .post(
                    "/issuers",
                    &json!({"issuer": issuer, "audiences": audiences, "algorithms": algorithms,
                            "jwks_uri": jwks_uri, "keys": keys, "consumer_claim": consumer_claim,
                            "leeway_seconds": leeway_seconds}),
                )
                .await?;
            print_object(&v, out);
        }
        IssuersCommand::List => {
            let v = c.get("/issuers").await?;
            print_items(
                &v,
                out,
                &["id", "issuer", "algorithms", "audiences", "jwks_uri"],
            );
        }
        IssuersCommand::Remove { issuer } => {
            c.delete(&format!("/issuers/{}", enc(issuer))).await?;
            if out == Output::Json {
                print_json(&json!({"removed": issuer}));
            } else {
                println!("removed {issuer}");
            }
        }
    }
    Ok(())
}

// -- output ------------------------------------------------------------------------------

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

fn print_rows(items: &[Value], columns: &[&str]) {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(columns.iter().map(|c| c.to_uppercase()));
    for item in items {
        table.add_row(columns.iter().map(|c| cell(&item[*c])));
    }
    println!("{table}");
}

fn print_items(v: &Value, out: Output, columns: &[&str]) {
    match out {
        Output::Json => print_json(v),
        Output::Table => print_rows(
            v["items"].as_array().map(Vec::as_slice).unwrap_or_default(),
            columns,
        ),
    }
}

fn print_object(v: &Value, out: Output) {
    match out {
        Output::Json => print_json(v),
        Output::Table => {
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            if let Some(o) = v.as_object() {
                for (k, val) in o {
                    let text = match val {
                        Value::Array(_) | Value::Object(_) => {
                            serde_json::to_string(val).unwrap_or_default()
                        }
                        other => cell(other),
                    };
                    table.add_row(vec![k.clone(), text]);
                }
            }
            println!("{table}");
        }
    }
}

fn print_verify(v: &Value) {
    if v["ok"].as_bool() == Some(true) {
        println!(
            "change log intact: {} entries; head (entry {}) {}",
            v["entries"],
            v["head_seq"],
            v["head"].as_str().unwrap_or("")
        );
        if v["anchor"]["found"].as_bool() == Some(true) {
            println!("anchor found at entry {}", v["anchor"]["seq"]);
        }
        println!(
            "keep the head hash outside Gatehouse; later run `gatehouse audit verify --anchor <hash>`"
        );
    } else {
        println!(
            "change log BROKEN: entry {} was {}: {}",
            v["first_bad"]["seq"],
            v["first_bad"]["kind"].as_str().unwrap_or("tampered with"),
            v["first_bad"]["message"].as_str().unwrap_or("")
        );
        println!(
            "entries up to {} are intact; their head is {}",
            v["head_seq"],
            v["head"].as_str().unwrap_or("")
        );
    }
}

fn print_access(v: &Value, out: Output) {
    if out == Output::Json {
        print_json(v);
        return;
    }
    let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "AT",
        "CONSUMER",
        "API",
        "MAJOR",
        "OPERATION",
        "METHOD",
        "STATUS",
        "DECISION",
        "MS",
        "REQUEST_ID",
    ]);
    for r in items {
        let ms = r["duration_us"]
            .as_u64()
            .map_or(String::new(), |us| format!("{:.1}", us as f64 / 1000.0));
        table.add_row(vec![
            cell(&r["at"]),
            cell(&r["consumer"]),
            cell(&r["api"]),
            cell(&r["major"]),
            cell(&r["operation"]),
            cell(&r["method"]),
            cell(&r["status"]),
            cell(&r["decision"]),
            ms,
            cell(&r["request_id"]),
        ]);
    }
    println!("{table}");
    if let Some(next) = v["next_cursor"].as_str() {
        eprintln!("more records: narrow the filters, or export with --format csv (cursor {next})");
    }
}

fn print_deprecations(v: &Value) {
    let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        println!("no deprecated versions");
        return;
    }
    for d in items {
        let days = match d["days_to_sunset"].as_i64() {
            Some(n) if n < 0 => format!("sunset passed {} days ago", -n),
            Some(n) => format!("{n} days to sunset"),
            None => "no sunset set".to_owned(),
        };
        println!(
            "{} {} (v{}): {}; {} calls in 7 days, {} in 30 days{}",
            cell(&d["api"]),
            cell(&d["version"]),
            cell(&d["major"]),
            days,
            d["calls_7d"],
            d["calls_30d"],
            if d["ready"].as_bool() == Some(true) {
                ": nobody called it in 30 days"
            } else {
                ""
            }
        );
        let mut table = Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["  CONSUMER", "OPERATION", "7 DAYS", "30 DAYS", "LAST SEEN"]);
        for c in d["consumers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = c["consumer"].as_str().unwrap_or("(anonymous)");
            for op in c["operations"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                table.add_row(vec![
                    format!("  {name}"),
                    cell(&op["operation"]),
                    cell(&op["calls_7d"]),
                    cell(&op["calls_30d"]),
                    cell(&op["last_seen"]),
                ]);
            }
        }
        if d["calls_30d"].as_u64().unwrap_or(0) > 0 {
            println!("{table}");
        }
    }
}

fn print_apply(report: &Value, out: Output) {
    if out == Output::Json {
        print_json(report);
        return;
    }
    let dry = report["dry_run"].as_bool() == Some(true);
    let steps = report["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if steps.is_empty() {
        println!("no changes: the registry already matches the catalog");
        return;
    }
    println!(
        "{} {} change(s):",
        if dry { "would make" } else { "made" },
        steps.len()
    );
    for s in steps {
        println!(
            "  {:<10} {:<48} {}",
            s["action"].as_str().unwrap_or(""),
            s["target"].as_str().unwrap_or(""),
            s["detail"].as_str().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_durations() {
        assert_eq!(parse_since("24h").unwrap(), time::Duration::hours(24));
        assert_eq!(parse_since("7d").unwrap(), time::Duration::days(7));
        assert_eq!(parse_since("90s").unwrap(), time::Duration::seconds(90));
        for bad in ["", "h", "24", "-1h", "3w"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query_value("2026-03-02T12:00:00+01:00"),
            "2026-03-02T12:00:00%2B01:00"
        );
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }
}
