//! Tansu, a Kafka-protocol broker, of a test's own.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::Daemon;

/// A Tansu broker on its own port with in-memory storage: it keeps nothing
/// across a restart (topics come back empty), as a broker that lost its disk
/// would.
#[derive(Debug)]
pub struct Tansu {
    port: u16,
    dir: PathBuf,
    daemon: Daemon,
}

impl Tansu {
    /// Starts one from `CAAS_TEST_TANSU`; `None` (said plainly) when it is
    /// unset and servers are not required.
    pub fn start() -> Option<Self> {
        let Some(bin) = std::env::var_os("CAAS_TEST_TANSU")
            .filter(|b| !b.is_empty())
            .map(PathBuf::from)
        else {
            crate::skipped("CAAS_TEST_TANSU is not set: a Kafka-protocol fault test did not run");
            return None;
        };
        let port = crate::free_port();
        let dir = crate::temp_dir("tansu", port);
        let listener = format!("tcp://127.0.0.1:{port}");
        let args = [
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        .map(String::from)
        .to_vec();
        let daemon = Daemon::new(bin, args, dir.join("tansu.log"));
        let mut tansu = Self { port, dir, daemon };
        tansu.resume();
        Some(tansu)
    }

    /// The bootstrap servers: `127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker.
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Starts it again on the same port and waits until it accepts connections.
    pub fn resume(&mut self) {
        self.daemon.start();
        assert!(
            crate::wait_for_port(self.port, Duration::from_secs(10)),
            "Tansu did not start: {}",
            self.daemon.log()
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.daemon.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
