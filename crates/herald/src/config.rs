//! `herald serve` settings: `herald.toml`, then `HERALD_*` environment variables, then flags.
//! Every setting has a working default, so `herald serve` alone runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Database: a SQLite file path (or `sqlite://path`), or `postgres://user@host/db` for a
    /// cluster of Herald nodes sharing one PostgreSQL. [default: herald.db]
    #[arg(long, env = "HERALD_DB", value_name = "PATH|URL")]
    pub db: Option<String>,
    /// Most PostgreSQL connections this node keeps open. [default: 16]
    #[arg(long, env = "HERALD_DB_POOL_SIZE")]
    pub db_pool_size: Option<usize>,
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
    /// The most a chain of blocking hooks may take, in milliseconds. [default: 10000]
    #[arg(long, env = "HERALD_HOOK_CHAIN_DEADLINE_MS")]
    pub hook_chain_deadline_ms: Option<u64>,
    /// Milliseconds a client has to send a request's headers, from its first byte (or from
    /// connecting). [default: 10000]
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a client has to send a whole request body once the handler reads it; a
    /// slower body is answered 408 and the connection closed. [default: 30000]
    #[arg(long, env = "HERALD_BODY_READ_TIMEOUT_MS")]
    pub body_read_timeout_ms: Option<u64>,
    /// Milliseconds a kept-alive connection may stay idle between requests. [default: 60000]
    #[arg(long, env = "HERALD_KEEP_ALIVE_TIMEOUT_MS")]
    pub keep_alive_timeout_ms: Option<u64>,
    /// Most client connections served at once; beyond it, new connections wait to be accepted
    /// until one closes. [default: 1024]
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "HERALD_LOG_JSON")]
    pub log_json: bool,
    /// Where a generated admin key is written (mode 0600) when standard error is not a terminal,
    /// so that it never lands among the logs. [default: herald-admin-key beside the SQLite
    /// file, or in the working directory]
    #[arg(long, env = "HERALD_ADMIN_KEY_FILE", value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// Seconds a node's claim on a delivery lasts before another node may take the delivery
    /// over; must exceed every endpoint's timeout. Hidden: the default (90 s) suits production,
    /// and the knob exists so tests of a dying node need not wait that long. [default: 90]
    #[arg(long, env = "HERALD_LEASE_SECONDS", hide = true)]
    pub lease_seconds: Option<u64>,
    /// The URL receivers reach this Herald at (`https://herald.example.com`): the Shared Signals
    /// issuer, metadata URLs and `jwks_uri` are built from it. Without it they come from the
    /// request's Host header, trusted only when it names a loopback address (development).
    #[arg(long = "public-url", env = "HERALD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
}

/// The shortest delivery lease `--lease-seconds` accepts.
pub const MIN_LEASE: Duration = Duration::from_secs(2);

/// What a lease must leave beyond an endpoint's timeout: after the exchange the node still
/// records the attempt, and a lease that ran out first would let another node send it again.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

impl ServeArgs {
    /// The delivery lease `--lease-seconds` asks for, if it does; refused below [`MIN_LEASE`].
    pub fn lease(&self) -> anyhow::Result<Option<Duration>> {
        let Some(seconds) = self.lease_seconds else {
            return Ok(None);
        };
        let lease = Duration::from_secs(seconds);
        if lease < MIN_LEASE {
            bail!(
                "--lease-seconds must be at least {} (and longer than every endpoint's timeout)",
                MIN_LEASE.as_secs()
            );
        }
        Ok(Some(lease))
    }
}

/// Refuses a lease that an endpoint's timeout (`(endpoint id, timeout_ms)`) could outlast: the
/// node sending to that endpoint would lose its claim mid-attempt, and another node would send
/// the same delivery again.
pub fn check_lease_covers(
    lease: Duration,
    endpoint_timeouts: impl IntoIterator<Item = (String, u64)>,
) -> anyhow::Result<()> {
    let longest = endpoint_timeouts
        .into_iter()
        .max_by_key(|(_, timeout_ms)| *timeout_ms);
    if let Some((endpoint_id, timeout_ms)) = longest
        && Duration::from_millis(timeout_ms) + LEASE_MARGIN > lease
    {
        bail!(
            "--lease-seconds {} is too short: endpoint {endpoint_id} has a {timeout_ms} ms \
             timeout, and a lease must exceed the longest endpoint timeout by {} s",
            lease.as_secs(),
            LEASE_MARGIN.as_secs()
        );
    }
    Ok(())
}

/// The same settings as they may appear in `herald.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    db: Option<String>,
    db_pool_size: Option<usize>,
    #[serde(default)]
    allow_network: Vec<IpNet>,
    max_body_bytes: Option<usize>,
    retention_days: Option<u32>,
    auto_disable_days: Option<u32>,
    hook_chain_deadline_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    keep_alive_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    log_json: Option<bool>,
    admin_key_file: Option<PathBuf>,
    public_url: Option<String>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A PostgreSQL URL and the pool size.
    Postgres {
        url: String,
        pool_size: usize,
    },
}

/// How long the HTTP server waits for slow or idle clients, and how many it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// From a request's first byte (or from connecting, for the first request) to the end of its
    /// headers.
    pub header_read_timeout: Duration,
    /// From the moment a handler starts reading a body to its last byte.
    pub body_read_timeout: Duration,
    /// Between the end of a response and the first byte of the next request.
    pub keep_alive_timeout: Duration,
    /// Connections served at once; at the cap, accepting waits until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The longest any of the connection timeouts may be: an hour.
const MAX_CONNECTION_TIMEOUT_MS: u64 = 3_600_000;

/// The most connections `--max-connections` accepts; file descriptors run out long before.
const MAX_CONNECTIONS: usize = 1_000_000;

impl ConnectionSettings {
    /// The settings from flags and environment (`args`) over the file, over the defaults.
    fn resolve(args: &ServeArgs, file: &FileSettings) -> anyhow::Result<Self> {
        let defaults = ConnectionSettings::default();
        let timeout = |name: &str, chosen: Option<u64>, default: Duration| {
            let Some(milliseconds) = chosen else {
                return Ok(default);
            };
            if !(1..=MAX_CONNECTION_TIMEOUT_MS).contains(&milliseconds) {
                bail!("{name} is between 1 and {MAX_CONNECTION_TIMEOUT_MS} milliseconds");
            }
            Ok(Duration::from_millis(milliseconds))
        };
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            bail!("max_connections is between 1 and {MAX_CONNECTIONS}");
        }
        Ok(ConnectionSettings {
            header_read_timeout: timeout(
                "header_read_timeout_ms",
                args.header_read_timeout_ms.or(file.header_read_timeout_ms),
                defaults.header_read_timeout,
            )?,
            body_read_timeout: timeout(
                "body_read_timeout_ms",
                args.body_read_timeout_ms.or(file.body_read_timeout_ms),
                defaults.body_read_timeout,
            )?,
            keep_alive_timeout: timeout(
                "keep_alive_timeout_ms",
                args.keep_alive_timeout_ms.or(file.keep_alive_timeout_ms),
                defaults.keep_alive_timeout,
            )?,
            max_connections,
        })
    }
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
    pub hook_chain_deadline_ms: u64,
    pub log_json: bool,
    /// Timeouts for slow and idle clients, and the connection cap.
    pub connections: ConnectionSettings,
    /// From `HERALD_ADMIN_KEY`; never from a file, so it is not committed by accident. When set,
    /// it replaces the admin key generated at a first start (that one is revoked).
    pub admin_key: Option<String>,
    /// Where a generated admin key is written when there is no terminal to show it on.
    pub admin_key_file: PathBuf,
    /// `--public-url`, without a trailing slash: where receivers reach Herald (SSF issuers).
    pub public_url: Option<String>,
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
        let connections = ConnectionSettings::resolve(args, &file)?;
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
        let database = parse_database(&db, args.db_pool_size.or(file.db_pool_size).unwrap_or(16))?;
        let admin_key_file = args
            .admin_key_file
            .clone()
            .or(file.admin_key_file)
            .unwrap_or_else(|| default_admin_key_file(&database));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .map(|url| parse_public_url(&url))
            .transpose()?;
        Ok(ServeSettings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8470))),
            database,
            allow_network,
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(256 * 1024),
            retention_days: args.retention_days.or(file.retention_days).unwrap_or(30),
            hook_chain_deadline_ms: args
                .hook_chain_deadline_ms
                .or(file.hook_chain_deadline_ms)
                .unwrap_or(10_000)
                .clamp(1, 60_000),
            auto_disable_days: args
                .auto_disable_days
                .or(file.auto_disable_days)
                .unwrap_or(5),
            log_json: args.log_json || file.log_json.unwrap_or(false),
            connections,
            admin_key,
            admin_key_file,
            public_url,
        })
    }
}

/// `--public-url`: an absolute http(s) URL with a host and nothing after its path, kept without
/// a trailing slash so paths can be appended.
fn parse_public_url(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text)
        .map_err(|error| anyhow::anyhow!("--public-url {text:?} is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        bail!(
            "--public-url must be an http(s) URL with a host and no query, fragment or credentials, like https://herald.example.com"
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `herald-admin-key` beside the SQLite file (where the operator already keeps Herald's data), or
/// in the working directory for PostgreSQL.
fn default_admin_key_file(database: &Database) -> PathBuf {
    const NAME: &str = "herald-admin-key";
    match database {
        Database::Sqlite(path) => path
            .parent()
            .map_or_else(|| PathBuf::from(NAME), |directory| directory.join(NAME)),
        Database::Postgres { .. } => PathBuf::from(NAME),
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

pub fn parse_database(text: &str, pool_size: usize) -> anyhow::Result<Database> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        if !(1..=1000).contains(&pool_size) {
            bail!("the database pool size is between 1 and 1000");
        }
        return Ok(Database::Postgres {
            url: text.to_owned(),
            pool_size,
        });
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
    fn public_urls_are_absolute_http_urls_kept_without_a_trailing_slash() {
        fn check(text: &str, expected: Option<&str>) {
            assert_eq!(parse_public_url(text).ok().as_deref(), expected, "{text}");
        }
        check(
            "https://herald.example.com",
            Some("https://herald.example.com"),
        );
        check(
            "https://herald.example.com/",
            Some("https://herald.example.com"),
        );
        check(
            "http://10.0.0.5:8470/herald/",
            Some("http://10.0.0.5:8470/herald"),
        );
        check("herald.example.com", None);
        check("ftp://herald.example.com", None);
        check("https://herald.example.com/?x=1", None);
        check("https://user:pw@herald.example.com", None);
    }

    #[test]
    fn databases_parse() {
        assert_eq!(
            parse_database("herald.db", 16).unwrap(),
            Database::Sqlite("herald.db".into())
        );
        assert_eq!(
            parse_database("sqlite:///var/lib/h.db", 16).unwrap(),
            Database::Sqlite("/var/lib/h.db".into())
        );
        assert_eq!(
            parse_database("postgres://postgres@127.0.0.1/herald", 8).unwrap(),
            Database::Postgres {
                url: "postgres://postgres@127.0.0.1/herald".into(),
                pool_size: 8
            }
        );
        assert!(parse_database("postgres://x", 0).is_err());
        assert!(parse_database("", 16).is_err());
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
        assert_eq!(settings.connections, ConnectionSettings::default());
        std::fs::write(&file, "lissten = 1\n").unwrap();
        let error = ServeSettings::resolve(&args).unwrap_err();
        assert!(
            format!("{error:#}").contains("unknown field `lissten`"),
            "{error:#}"
        );
    }

    #[test]
    fn connection_settings_come_from_the_file_and_flags_and_are_bounded() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("herald.toml");
        std::fs::write(
            &file,
            "header_read_timeout_ms = 300\nbody_read_timeout_ms = 400\nkeep_alive_timeout_ms = 500\nmax_connections = 7\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            keep_alive_timeout_ms: Some(250),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        assert_eq!(
            settings.connections,
            ConnectionSettings {
                header_read_timeout: Duration::from_millis(300),
                body_read_timeout: Duration::from_millis(400),
                keep_alive_timeout: Duration::from_millis(250),
                max_connections: 7,
            }
        );
        for (args, refused) in [
            (
                ServeArgs {
                    header_read_timeout_ms: Some(0),
                    ..args.clone()
                },
                "header_read_timeout_ms",
            ),
            (
                ServeArgs {
                    body_read_timeout_ms: Some(MAX_CONNECTION_TIMEOUT_MS + 1),
                    ..args.clone()
                },
                "body_read_timeout_ms",
            ),
            (
                ServeArgs {
                    max_connections: Some(0),
                    ..args.clone()
                },
                "max_connections",
            ),
        ] {
            let error = ServeSettings::resolve(&args).unwrap_err();
            assert!(format!("{error:#}").contains(refused), "{error:#}");
        }
    }
}
