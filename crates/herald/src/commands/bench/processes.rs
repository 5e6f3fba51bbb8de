//! The processes a benchmark runs: the Herald nodes under test (and the database made for them), and the sampler of their memory.

use super::*;

/// The servers under test, and the PostgreSQL database made for them.
pub(super) struct Cluster {
    pub(super) nodes: Vec<ServerProcess>,
    /// The SQLite file or PostgreSQL URL every node serves.
    pub(super) database: std::ffi::OsString,
    /// Where callgrind profiles go, when the nodes run under it.
    pub(super) callgrind: Option<std::path::PathBuf>,
    pub(super) postgres: Option<(String, String)>,
    pub(super) _directory: tempfile::TempDir,
}

impl Cluster {
    pub(super) async fn start(args: &BenchArgs, admin_key: &str) -> anyhow::Result<Self> {
        let directory = tempfile::tempdir()?;
        let Some(server_url) = &args.postgres else {
            if args.nodes != 1 {
                bail!("--nodes needs --postgres: one SQLite file belongs to one process");
            }
            let database = directory.path().join("bench.db");
            let node =
                ServerProcess::start(database.as_os_str(), admin_key, args.callgrind.as_deref())?;
            return Ok(Cluster {
                nodes: vec![node],
                database: database.into_os_string(),
                callgrind: args.callgrind.clone(),
                postgres: None,
                _directory: directory,
            });
        };
        let name = format!("herald_bench_{}", now_us());
        let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("failed to connect to {server_url}"))?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let mut url = url::Url::parse(server_url).context("--postgres is not a URL")?;
        url.set_path(&format!("/{name}"));
        let database_url = url.to_string();
        // One node first, so the schema is created once before the others connect.
        let mut nodes = vec![ServerProcess::start(
            std::ffi::OsStr::new(&database_url),
            admin_key,
            args.callgrind.as_deref(),
        )?];
        for _ in 1..args.nodes.max(1) {
            nodes.push(ServerProcess::start(
                std::ffi::OsStr::new(&database_url),
                admin_key,
                args.callgrind.as_deref(),
            )?);
        }
        Ok(Cluster {
            nodes,
            database: database_url.into(),
            callgrind: args.callgrind.clone(),
            postgres: Some((server_url.clone(), name)),
            _directory: directory,
        })
    }

    /// Stops every node, runs `work` on the database while nothing serves it (a SQLite file
    /// belongs to one process), and starts the same number of nodes again.
    pub(super) async fn with_nodes_stopped<F: std::future::Future<Output = anyhow::Result<()>>>(
        &mut self,
        admin_key: &str,
        work: impl FnOnce(std::ffi::OsString) -> F,
    ) -> anyhow::Result<()> {
        let n_nodes = self.nodes.len();
        self.nodes.clear();
        work(self.database.clone()).await?;
        for _ in 0..n_nodes {
            self.nodes.push(ServerProcess::start(
                &self.database,
                admin_key,
                self.callgrind.as_deref(),
            )?);
        }
        Ok(())
    }

    pub(super) fn bases(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("http://{}", node.address))
            .collect()
    }

    /// The largest current RSS of any node (MiB).
    pub(super) fn current_rss(&self) -> Option<f64> {
        self.nodes
            .iter()
            .filter_map(ServerProcess::current_rss)
            .reduce(f64::max)
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.child.id()).collect()
    }

    /// The largest peak RSS of any node, and the CPU time of all of them.
    pub(super) fn usage(&self) -> (Option<f64>, Option<f64>) {
        let usages: Vec<_> = self.nodes.iter().map(ServerProcess::usage).collect();
        let peak = usages.iter().filter_map(|(rss, _)| *rss).reduce(f64::max);
        let cpu = usages.iter().map(|(_, cpu)| *cpu).sum::<Option<f64>>();
        (peak, cpu)
    }

    pub(super) async fn stop(mut self) {
        self.nodes.clear();
        if let Some((server_url, name)) = self.postgres.take()
            && let Ok((client, connection)) =
                tokio_postgres::connect(&server_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            if let Err(error) = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!("could not drop the benchmark database {name}: {error}");
            }
        }
    }
}

/// The server under test, killed when dropped.
pub(super) struct ServerProcess {
    pub(super) child: Child,
    pub(super) address: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    pub(super) fn start(
        database: &std::ffi::OsStr,
        admin_key: &str,
        callgrind: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let herald = std::env::current_exe()?;
        let mut command = match callgrind {
            Some(directory) => {
                let (program, arguments) = bench_callgrind::wrapper(directory);
                let mut command = Command::new(program);
                command.args(arguments).arg(&herald);
                command
            }
            None => Command::new(&herald),
        };
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-network",
                "127.0.0.0/8",
                "--db",
            ])
            .arg(database)
            .env("HERALD_ADMIN_KEY", admin_key)
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start herald serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let Some(line) = lines.next().transpose()? else {
                bail!("herald serve exited before listening")
            };
            if let Some(rest) = line.strip_prefix("Herald listening on http://") {
                break rest.trim().parse()?;
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(ServerProcess { child, address })
    }

    /// Resident memory (MiB) of the server now, from /proc.
    pub(super) fn current_rss(&self) -> Option<f64> {
        status_mib(self.child.id(), "VmRSS:")
    }

    /// Peak resident memory (MiB) and CPU seconds of the server so far, from /proc.
    pub(super) fn usage(&self) -> (Option<f64>, Option<f64>) {
        let pid = self.child.id();
        let peak_rss_mib = status_mib(pid, "VmHWM:");
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: f64 =
                    fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some(ticks / 100.0)
            });
        (peak_rss_mib, cpu_seconds)
    }
}

/// A memory line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`, in kB there), in MiB; `None` once
/// the process is gone or where there is no /proc.
pub(super) fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The servers' RSS, sampled every 500 ms in the background: the largest node's value each time.
pub(super) struct RssSampler {
    pub(super) samples: Arc<Mutex<Vec<(Instant, f64)>>>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub(super) fn start(pids: Vec<u32>) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                let rss = pids
                    .iter()
                    .filter_map(|pid| status_mib(*pid, "VmRSS:"))
                    .reduce(f64::max);
                if let (Some(rss), Ok(mut samples)) = (rss, recorded.lock()) {
                    samples.push((Instant::now(), rss));
                }
            }
        });
        RssSampler { samples, task }
    }

    /// The largest sample taken at or after `since`.
    pub(super) fn max_since(&self, since: Instant) -> Option<f64> {
        let samples = self.samples.lock().ok()?;
        samples
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, rss)| *rss)
            .reduce(f64::max)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
