//! Finding the test server, and private servers for fault tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use caas_adapters::postgres::{PostgresConfig, PostgresStore};

static SKIP_NOTICE: Once = Once::new();

/// The server every test shares, or `None` (after saying so plainly) when
/// there is none and none is required.
pub(crate) fn url() -> Option<String> {
    match std::env::var("CAAS_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
                panic!(
                    "CAAS_TEST_POSTGRES_URL is not set but CAAS_REQUIRE_INTEGRATION=1: \
                     this run needs a PostgreSQL server (scripts/test provisions one)"
                );
            }
            SKIP_NOTICE.call_once(|| {
                // Straight to the file descriptor: libtest would swallow a
                // passing test's `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: the PostgreSQL tests did not run (CAAS_TEST_POSTGRES_URL is not \
                     set); they return at once and count as passed. `scripts/test` provisions \
                     a server.\n"
                );
            });
            None
        }
    }
}

/// A modest pool: cases run in parallel against one shared server.
pub(crate) fn config(url: &str) -> PostgresConfig {
    PostgresConfig {
        pool_size: 4,
        ..PostgresConfig::new(url)
    }
}

/// A store on the shared server, or `None` when there is none.
pub(crate) async fn store() -> Option<PostgresStore> {
    let url = url()?;
    Some(PostgresStore::connect(config(&url)).await.unwrap())
}

/// A schema name no other test uses.
pub(crate) fn fresh_schema(tag: &str) -> String {
    format!("caas_t_{tag}_{}_{}", std::process::id(), fastrand::u32(..))
}

/// Drops a schema a test made.
pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres_connect(url).await;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
}

/// A plain connection for what the store does not expose.
pub(crate) async fn tokio_postgres_connect(
    url: &str,
) -> (
    tokio_postgres::Client,
    impl Future<Output = ()> + Send + 'static,
) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    (client, async move {
        let _ = conn.await;
    })
}

/// A PostgreSQL server of the test's own: its data directory under a temp dir,
/// its own port, started and stopped by the test (never a server anyone else
/// uses). Stopped and removed on drop.
pub(crate) struct PrivateServer {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return Some(p);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl PrivateServer {
    /// Makes and starts one; `None` (after saying so) when PostgreSQL's server
    /// binaries are not installed and none is required.
    pub(crate) fn start() -> Option<Self> {
        let Some(bin) = find_bin() else {
            if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
                panic!("PostgreSQL's server binaries (initdb, pg_ctl) are not installed");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no initdb found; the PostgreSQL fault test did not run"
            );
            return None;
        };
        let root = std::env::var("CAAS_USER_IS_ROOT").ok();
        let as_postgres = root.as_deref() == Some("1")
            || Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = std::env::temp_dir().join(format!(
            "caas-pg-fault-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Self {
            dir,
            port: free_port(),
            bin,
            as_postgres,
        };
        if as_postgres {
            // initdb refuses to run as root: the server runs as `postgres`.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the private data dir");
        }
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server.pg_ctl_start();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
                .unwrap()
        } else {
            Command::new(&exe).args(args).output().unwrap()
        };
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts after [`PrivateServer::stop`]) the server.
    pub(crate) fn pg_ctl_start(&self) {
        let data = self.data();
        let log = self.dir.join("log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=on \
             -c max_connections=60",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server: `immediate` kills it without a checkpoint (as a crash
    /// would), otherwise a fast shutdown (connections are cut).
    pub(crate) fn stop(&self, immediate: bool) {
        let data = self.data();
        let mode = if immediate { "immediate" } else { "fast" };
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", mode, "-w", "stop"],
        );
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            Command::new(pg_ctl)
        };
        let _ = cmd
            .args([
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
