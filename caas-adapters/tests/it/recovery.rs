//! Helpers of the fault tests that stop a server and wait for an adapter to
//! recover by itself.

use std::time::{Duration, Instant};

use caas_core::Error;

/// Retries `f` until it succeeds, for at most 10 s: the adapters recover by
/// themselves once their server is back.
pub(crate) async fn eventually<T>(mut f: impl AsyncFnMut() -> caas_core::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "not recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `r` is the temporary `unavailable` an outage must give.
pub(crate) fn unavailable<T: std::fmt::Debug>(r: caas_core::Result<T>) -> bool {
    matches!(
        r,
        Err(Error::Unavailable {
            temporary: true,
            ..
        })
    )
}
