//! A `redis-server` of a test's own, without persistence.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::Daemon;

/// A Redis on its own port: empty again after each restart (nothing is saved),
/// as a Redis without persistence would be after a crash.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    dir: PathBuf,
    daemon: Daemon,
}

impl Redis {
    /// Starts one; `None` (said plainly) when `redis-server` is missing and
    /// servers are not required.
    pub fn start() -> Option<Self> {
        let bin = PathBuf::from(
            std::env::var("CAAS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
        );
        if !Daemon::exists(&bin) {
            crate::skipped("no redis-server here: a Redis fault test did not run");
            return None;
        }
        let port = crate::free_port();
        let dir = crate::temp_dir("redis", port);
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let daemon = Daemon::new(bin, args, dir.join("redis.log"));
        let mut redis = Self { port, dir, daemon };
        redis.resume();
        Some(redis)
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Starts it again on the same port and waits until it answers `PING`.
    pub fn resume(&mut self) {
        self.daemon.start();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pong() {
            assert!(
                Instant::now() < deadline && !self.daemon.exited(),
                "redis-server did not start: {}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pong(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.daemon.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
