//! `gatehouse serve` configuration, in two stages: what the user wrote (flags, environment,
//! an optional TOML file: [`ServeArgs`], [`FileConfig`]) and the validated form the node runs
//! on ([`ServeConfig`]). Flags and environment win over the file. Secrets are redacted in
//! `Debug`.

use crate::access::AccessLogConfig;
use gatehouse_policies::lint::{Ruleset, RulesetError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that is on or off (`--access-log on|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// Which parts of Gatehouse a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// The gateway and the admin API.
    All,
    /// Only the gateway (it still follows the registry to keep its snapshot current).
    Gateway,
    /// Only the admin API.
    Admin,
}

impl NodeRole {
    pub fn runs_proxy(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Gateway)
    }

    pub fn runs_admin(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Admin)
    }
}

/// The flags of `gatehouse serve` (each also `GATEHOUSE_<NAME>`).
#[derive(Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Where the embedded database and spools live.
    #[arg(long, env = "GATEHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` (default: SQLite at DATA_DIR/gatehouse.db).
    #[arg(long, env = "GATEHOUSE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis for cluster-wide rate limits (`redis://…`).
    #[arg(long, env = "GATEHOUSE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Address of the gateway (default 127.0.0.1:8080).
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN")]
    pub proxy_listen: Option<String>,
    /// Address of the admin API (default 127.0.0.1:8081).
    #[arg(long, env = "GATEHOUSE_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// What this node runs.
    #[arg(long, env = "GATEHOUSE_ROLE", value_enum)]
    pub role: Option<NodeRole>,
    /// Do not apply the bundled catalog to an empty registry.
    #[arg(long, env = "GATEHOUSE_NO_SEED")]
    pub no_seed: bool,
    /// A TOML file with any of the settings above (flags and environment win).
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The catalog applied to an empty registry (default: specs/catalog.yaml).
    #[arg(long, env = "GATEHOUSE_SEED_CATALOG")]
    pub seed_catalog: Option<PathBuf>,
    /// Worker threads of the gateway.
    #[arg(long, env = "GATEHOUSE_PROXY_THREADS")]
    pub proxy_threads: Option<usize>,
    /// A YAML ruleset overriding the publish gate's lint severities (the format of
    /// `gatehouse spec lint --ruleset`).
    #[arg(long, env = "GATEHOUSE_LINT_RULESET")]
    pub lint_ruleset: Option<PathBuf>,
    /// An issuer's key set is re-fetched for an unknown `kid` at most once per this many
    /// seconds (default 10).
    #[arg(long, env = "GATEHOUSE_JWKS_MIN_REFRESH_SECONDS")]
    pub jwks_min_refresh_seconds: Option<u64>,
    /// Record every gateway request in the access log (default on).
    #[arg(long, env = "GATEHOUSE_ACCESS_LOG", value_enum)]
    pub access_log: Option<Switch>,
    /// Days access records are kept (0: forever; default 90).
    #[arg(long, env = "GATEHOUSE_ACCESS_RETENTION_DAYS")]
    pub access_retention_days: Option<u32>,
    /// Size limit of the access-log spool in MiB (default 1024); beyond it records are dropped.
    #[arg(long, env = "GATEHOUSE_ACCESS_SPOOL_MAX_MB")]
    pub access_spool_max_mb: Option<u64>,
    /// Consumers that get their own label in the metrics before the rest count as `other`
    /// (default 50).
    #[arg(long, env = "GATEHOUSE_METRICS_CONSUMERS")]
    pub metrics_consumers: Option<usize>,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("proxy_listen", &self.proxy_listen)
            .field("admin_listen", &self.admin_listen)
            .field("role", &self.role)
            .field("no_seed", &self.no_seed)
            .field("config", &self.config)
            .field("lint_ruleset", &self.lint_ruleset)
            .field("access_log", &self.access_log)
            .finish_non_exhaustive()
    }
}

/// The TOML file's shape: the same settings, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub proxy_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub role: Option<NodeRole>,
    pub no_seed: Option<bool>,
    pub seed_catalog: Option<PathBuf>,
    pub proxy_threads: Option<usize>,
    pub lint_ruleset: Option<PathBuf>,
    pub jwks_min_refresh_seconds: Option<u64>,
    pub access_log: Option<Switch>,
    pub access_retention_days: Option<u32>,
    pub access_spool_max_mb: Option<u64>,
    pub metrics_consumers: Option<usize>,
    /// Records waiting in memory at most (default 65536).
    pub access_queue: Option<usize>,
    /// Records per store transaction at most (default 1000).
    pub access_batch: Option<usize>,
    /// How long the first record of a batch waits for others, in ms (default 200).
    pub access_flush_ms: Option<u64>,
    /// A store call slower than this (ms) sends the batch to the spool (default 5000).
    pub access_store_timeout_ms: Option<u64>,
}

/// The validated configuration a node runs on.
#[derive(Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub proxy_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub role: NodeRole,
    pub seed: bool,
    pub seed_catalog: PathBuf,
    pub proxy_threads: usize,
    /// The publish gate's ruleset, and the file it came from (`None`: built-in).
    pub lint_ruleset: Ruleset,
    pub lint_ruleset_file: Option<PathBuf>,
    /// The least time between two unknown-`kid` fetches of one issuer's key set.
    pub jwks_min_refresh: std::time::Duration,
    /// `None`: access logging is off.
    pub access_log: Option<AccessLogConfig>,
    pub metrics_consumers: usize,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("proxy_listen", &self.proxy_listen)
            .field("admin_listen", &self.admin_listen)
            .field("role", &self.role)
            .field("seed", &self.seed)
            .field("proxy_threads", &self.proxy_threads)
            .field("lint_ruleset_file", &self.lint_ruleset_file)
            .field("jwks_min_refresh", &self.jwks_min_refresh)
            .field("access_log", &self.access_log)
            .field("metrics_consumers", &self.metrics_consumers)
            .finish()
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("`{setting}` is `{value}`, which is not a socket address like 127.0.0.1:8080")]
    Address {
        setting: &'static str,
        value: String,
    },
    #[error("`database_url` must start with sqlite:// or postgres:// (got `{0}`)")]
    DatabaseUrl(String),
    #[error("`proxy_threads` must be between 1 and 256")]
    Threads,
    #[error("lint ruleset {path}: {source}")]
    Ruleset { path: PathBuf, source: RulesetError },
    #[error("`jwks_min_refresh_seconds` must be between 1 and 3600")]
    JwksRefresh,
    #[error("`{setting}` is {value}; it must be between {min} and {max}")]
    OutOfRange {
        setting: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// `value`, or `default`, checked against `min..=max`.
fn ranged(
    setting: &'static str,
    value: Option<u64>,
    default: u64,
    (min, max): (u64, u64),
) -> Result<u64, ConfigError> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::OutOfRange {
            setting,
            value: v,
            min,
            max,
        })
    }
}

/// Replaces a password in a URL by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl ServeArgs {
    /// Merges flags, environment and file, and validates the result.
    pub fn resolve(&self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("gatehouse.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            return Err(ConfigError::DatabaseUrl(redact_url(&database_url)));
        }
        let address =
            |setting, value: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
                let value = value.unwrap_or_else(|| default.to_owned());
                value
                    .parse()
                    .map_err(|_| ConfigError::Address { setting, value })
            };
        let proxy_threads = self.proxy_threads.or(file.proxy_threads).unwrap_or(1);
        if !(1..=256).contains(&proxy_threads) {
            return Err(ConfigError::Threads);
        }
        let lint_ruleset_file = self.lint_ruleset.clone().or(file.lint_ruleset);
        let lint_ruleset = match &lint_ruleset_file {
            None => Ruleset::builtin(),
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Ruleset::from_yaml(&bytes).map_err(|source| ConfigError::Ruleset {
                    path: path.clone(),
                    source,
                })?
            }
        };
        let jwks_min_refresh_seconds = self
            .jwks_min_refresh_seconds
            .or(file.jwks_min_refresh_seconds)
            .unwrap_or(10);
        if !(1..=3600).contains(&jwks_min_refresh_seconds) {
            return Err(ConfigError::JwksRefresh);
        }
        let access_log = match self.access_log.or(file.access_log).unwrap_or(Switch::On) {
            Switch::Off => None,
            Switch::On => {
                let mut c = AccessLogConfig::new(&data_dir);
                let batch = ranged(
                    "access_batch",
                    file.access_batch.map(|v| v as u64),
                    1_000,
                    (1, 10_000),
                )?;
                c.batch_size = usize::try_from(batch).unwrap_or(1_000);
                let queue = ranged(
                    "access_queue",
                    file.access_queue.map(|v| v as u64),
                    65_536,
                    (batch, 16 * 1024 * 1024),
                )?;
                c.queue_capacity = usize::try_from(queue).unwrap_or(65_536);
                c.flush_interval = Duration::from_millis(ranged(
                    "access_flush_ms",
                    file.access_flush_ms,
                    200,
                    (1, 600_000),
                )?);
                c.store_timeout = Duration::from_millis(ranged(
                    "access_store_timeout_ms",
                    file.access_store_timeout_ms,
                    5_000,
                    (10, 600_000),
                )?);
                let spool_mb = ranged(
                    "access_spool_max_mb",
                    self.access_spool_max_mb.or(file.access_spool_max_mb),
                    1_024,
                    (1, 1024 * 1024),
                )?;
                c.spool_max_bytes = spool_mb * 1024 * 1024;
                c.spool_segment_bytes = (c.spool_max_bytes / 8).clamp(64 * 1024, 16 * 1024 * 1024);
                let days = ranged(
                    "access_retention_days",
                    self.access_retention_days
                        .or(file.access_retention_days)
                        .map(u64::from),
                    90,
                    (0, 36_500),
                )?;
                c.retention = (days > 0).then(|| Duration::from_secs(days * 86_400));
                Some(c)
            }
        };
        let metrics_consumers = ranged(
            "metrics_consumers",
            self.metrics_consumers
                .or(file.metrics_consumers)
                .map(|v| v as u64),
            crate::metrics::DEFAULT_CONSUMER_LIMIT as u64,
            (0, 10_000),
        )?;
        Ok(ServeConfig {
            access_log,
            metrics_consumers: usize::try_from(metrics_consumers)
                .unwrap_or(crate::metrics::DEFAULT_CONSUMER_LIMIT),
            jwks_min_refresh: std::time::Duration::from_secs(jwks_min_refresh_seconds),
            proxy_listen: address(
                "proxy_listen",
                self.proxy_listen.clone().or(file.proxy_listen),
                "127.0.0.1:8080",
            )?,
            admin_listen: address(
                "admin_listen",
                self.admin_listen.clone().or(file.admin_listen),
                "127.0.0.1:8081",
            )?,
            redis_url: self.redis_url.clone().or(file.redis_url),
            role: self.role.or(file.role).unwrap_or(NodeRole::All),
            seed: !(self.no_seed || file.no_seed.unwrap_or(false)),
            seed_catalog: self
                .seed_catalog
                .clone()
                .or(file.seed_catalog)
                .unwrap_or_else(|| PathBuf::from("specs/catalog.yaml")),
            proxy_threads,
            lint_ruleset,
            lint_ruleset_file,
            data_dir,
            database_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.database_url, "sqlite://./data/gatehouse.db");
        assert_eq!(c.proxy_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.role, NodeRole::All);
        assert!(c.seed);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "proxy_listen = \"127.0.0.1:9000\"\nrole = \"gateway\"\nno_seed = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            role: Some(NodeRole::Admin),
            ..ServeArgs::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.proxy_listen.port(), 9000);
        assert_eq!(c.role, NodeRole::Admin);
        assert!(!c.seed);
    }

    #[test]
    fn refusals() {
        let bad = ServeArgs {
            proxy_listen: Some("nope".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(bad.resolve(), Err(ConfigError::Address { .. })));
        let bad = ServeArgs {
            database_url: Some("mysql://x".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(bad.resolve(), Err(ConfigError::DatabaseUrl(_))));
    }

    #[test]
    fn a_lint_ruleset_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, "rules:\n  operation-summary: error\n").unwrap();
        let c = ServeArgs {
            lint_ruleset: Some(path.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            c.lint_ruleset.severity("operation-summary"),
            Some(gatehouse_policies::lint::LintSeverity::Error)
        );
        std::fs::write(&path, "rules:\n  no-such-rule: off\n").unwrap();
        let bad = ServeArgs {
            lint_ruleset: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(bad.resolve(), Err(ConfigError::Ruleset { .. })));
        let missing = ServeArgs {
            lint_ruleset: Some(dir.path().join("nope.yaml")),
            ..ServeArgs::default()
        };
        assert!(matches!(missing.resolve(), Err(ConfigError::Read { .. })));
        assert_eq!(
            ServeArgs::default().resolve().unwrap().lint_ruleset,
            Ruleset::builtin()
        );
    }

    #[test]
    fn access_log_settings() {
        let c = ServeArgs::default().resolve().unwrap();
        let a = c.access_log.unwrap();
        assert_eq!(a.spool_dir, PathBuf::from("./data/access-spool"));
        assert_eq!(a.retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(c.metrics_consumers, 50);
        let off = ServeArgs {
            access_log: Some(Switch::Off),
            ..ServeArgs::default()
        };
        assert!(off.resolve().unwrap().access_log.is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "access_log = \"on\"\naccess_batch = 50\naccess_flush_ms = 10\naccess_retention_days = 0\n",
        )
        .unwrap();
        let c = ServeArgs {
            config: Some(path.clone()),
            access_spool_max_mb: Some(8),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let a = c.access_log.unwrap();
        assert_eq!(
            (a.batch_size, a.flush_interval),
            (50, Duration::from_millis(10))
        );
        assert_eq!((a.retention, a.spool_max_bytes), (None, 8 * 1024 * 1024));
        std::fs::write(&path, "access_batch = 0\n").unwrap();
        let bad = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(
            bad.resolve(),
            Err(ConfigError::OutOfRange {
                setting: "access_batch",
                ..
            })
        ));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        let c = ServeArgs {
            database_url: Some("postgres://u:secret@h/db".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
