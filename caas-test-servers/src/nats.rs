//! A `nats-server` with JetStream of a test's own.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::Daemon;

/// A NATS server with JetStream on its own port and storage directory, which
/// survives its restarts (streams and their messages are kept on disk).
#[derive(Debug)]
pub struct Nats {
    port: u16,
    dir: PathBuf,
    daemon: Daemon,
}

impl Nats {
    /// Starts one; `None` (said plainly) when `nats-server` is missing and
    /// servers are not required.
    pub fn start() -> Option<Self> {
        let bin = PathBuf::from(
            std::env::var("CAAS_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into()),
        );
        if !Daemon::exists(&bin) {
            crate::skipped("no nats-server here: a NATS fault test did not run");
            return None;
        }
        let port = crate::free_port();
        let dir = crate::temp_dir("nats", port);
        let store = dir.join("jetstream");
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &store.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let daemon = Daemon::new(bin, args, dir.join("nats.log"));
        let mut nats = Self { port, dir, daemon };
        nats.resume();
        Some(nats)
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Starts it again on the same port and storage, and waits until it
    /// accepts connections (JetStream may need a moment more; clients retry).
    pub fn resume(&mut self) {
        self.daemon.start();
        assert!(
            crate::wait_for_port(self.port, Duration::from_secs(10)),
            "nats-server did not start: {}",
            self.daemon.log()
        );
    }

    /// Forgets everything the server stored (call it while it is stopped).
    pub fn wipe(&self) {
        let store = self.dir.join("jetstream");
        let _ = std::fs::remove_dir_all(&store);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.daemon.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
