#![doc = include_str!("../README.md")]

mod nats;
mod postgres;
mod process;
mod redis;
mod tansu;

pub use nats::Nats;
pub use postgres::Postgres;
pub use redis::Redis;
pub use tansu::Tansu;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Whether `CAAS_REQUIRE_INTEGRATION=1` makes a missing server a failure.
pub fn required() -> bool {
    std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1")
}

/// Says plainly that a test did not run, or fails it when servers are
/// required: `SKIPPED: {what}` on stderr.
pub fn skipped(what: &str) {
    assert!(
        !required(),
        "{what}, but CAAS_REQUIRE_INTEGRATION=1 requires it"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Waits until something accepts connections on `port`, for at most `within`.
pub fn wait_for_port(port: u16, within: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A fresh directory under the system's temp dir, named for `what`.
fn temp_dir(what: &str, port: u16) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "caas-{what}-{port}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    dir
}
