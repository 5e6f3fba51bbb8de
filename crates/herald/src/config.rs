//! `herald serve` settings: `herald.toml`, then `HERALD_*` environment variables, then flags.
//! Every setting has a working default, so `herald serve` alone runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ipnet::IpNet;
use serde::Deserialize;

/// Flags of `herald serve`; each also reads its `HERALD_*` variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Configuration file; read when present. [default: ./herald.toml]
    #[arg(long, env = "HERALD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on. [default: 127.0.0.1:8470]
    #[arg(long, env = "HERALD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Database: a SQLite file path (or `sqlite://path`). [default: herald.db]
    #[arg(long, env = "HERALD_DB", value_name = "PATH|URL")]
    pub db: Option<String>,
    /// Let deliveries reach this network, which the SSRF guard refuses otherwise (repeatable;
    /// e.g. 127.0.0.0/8 for a receiver on this machine).
    #[arg(
        long = "allow-network",
        env = "HERALD_ALLOW_NETWORK",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub allow_network: Vec<IpNet>,
    /// Largest request body, in bytes. [default: 262144]
    #[arg(long, env = "HERALD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Days events and attempts are kept. [default: 30]
    #[arg(long, env = "HERALD_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Days an endpoint may only fail before it is disabled. [default: 5]
    #[arg(long, env = "HERALD_AUTO_DISABLE_DAYS")]
    pub auto_disable_days: Option<u32>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "HERALD_LOG_JSON")]
    pub log_json: bool,
}

/// The same settings as they may appear in `herald.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    db: Option<String>,
    #[serde(default)]
    allow_network: Vec<IpNet>,
    max_body_bytes: Option<usize>,
    retention_days: Option<u32>,
    auto_disable_days: Option<u32>,
    log_json: Option<bool>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub database: Database,
    pub allow_network: Vec<IpNet>,
    pub max_body_bytes: usize,
    pub retention_days: u32,
    pub auto_disable_days: u32,
    pub log_json: bool,
    /// From `HERALD_ADMIN_KEY`; never from a file, so it is not committed by accident.
    pub admin_key: Option<String>,
}

impl ServeSettings {
    /// Layers the file under the environment and flags (clap has already merged those two).
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let explicit_file = args.config.is_some();
        let path = args
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("herald.toml"));
        let file = read_file(&path, explicit_file)?;
        let db = args
            .db
            .clone()
            .or(file.db)
            .unwrap_or_else(|| "herald.db".to_owned());
        let allow_network = if args.allow_network.is_empty() {
            file.allow_network
        } else {
            args.allow_network.clone()
        };
        let admin_key = std::env::var("HERALD_ADMIN_KEY")
            .ok()
            .filter(|key| !key.trim().is_empty());
        if admin_key.as_ref().is_some_and(|key| key.len() < 16) {
            bail!("HERALD_ADMIN_KEY is too short: use at least 16 random characters");
        }
        Ok(ServeSettings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8470))),
            database: parse_database(&db)?,
            allow_network,
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(256 * 1024),
            retention_days: args.retention_days.or(file.retention_days).unwrap_or(30),
            auto_disable_days: args
                .auto_disable_days
                .or(file.auto_disable_days)
                .unwrap_or(5),
            log_json: args.log_json || file.log_json.unwrap_or(false),
            admin_key,
        })
    }
}

fn read_file(path: &Path, must_exist: bool) -> anyhow::Result<FileSettings> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("{} is not a valid Herald configuration", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok(FileSettings::default())
        }
        Err(error) => Err(error).with_context(|| format!("failed to read {}", path.display())),
    }
}

fn parse_database(text: &str) -> anyhow::Result<Database> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        bail!("PostgreSQL is not supported by this version of Herald yet: use a SQLite file path");
    }
    let path = text.strip_prefix("sqlite://").unwrap_or(text);
    if path.is_empty() {
        bail!("--db needs a file path");
    }
    Ok(Database::Sqlite(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_parse() {
        assert_eq!(
            parse_database("herald.db").unwrap(),
            Database::Sqlite("herald.db".into())
        );
        assert_eq!(
            parse_database("sqlite:///var/lib/h.db").unwrap(),
            Database::Sqlite("/var/lib/h.db".into())
        );
        assert!(parse_database("postgres://x").is_err());
        assert!(parse_database("").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("herald.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndb = \"from-file.db\"\nretention_days = 7\nallow_network = [\"10.0.0.0/8\"]\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            db: Some("from-flag.db".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(settings.database, Database::Sqlite("from-flag.db".into()));
        assert_eq!(settings.retention_days, 7);
        assert_eq!(
            settings.allow_network,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        std::fs::write(&file, "lissten = 1\n").unwrap();
        let error = ServeSettings::resolve(&args).unwrap_err();
        assert!(
            format!("{error:#}").contains("unknown field `lissten`"),
            "{error:#}"
        );
    }
}
