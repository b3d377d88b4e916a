use std::time::Duration;

use caas_core::ratelimit::Quota;

/// Limits and sizes of the WebSocket server.
///
/// The defaults suit chat: frames are small, so socket buffers are 8 KiB instead
/// of tungstenite's 128 KiB, which keeps an idle connection's memory small.
#[derive(Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// Largest client frame the server acts on; a larger one (up to
    /// `max_message_bytes`) gets a `payload_too_large` error frame and the
    /// connection stays open.
    pub max_frame_bytes: usize,
    /// Largest WebSocket message (and frame) the socket reads at all; a larger one
    /// closes the connection with 1009, since reading it would cost its size in
    /// memory.
    pub max_message_bytes: usize,
    /// Socket read buffer.
    pub read_buffer_bytes: usize,
    /// How much outgoing data is gathered before it is written to the socket.
    pub write_buffer_bytes: usize,
    /// Ceiling of the outgoing buffer (a cap, not an allocation). It must hold the
    /// largest event the server sends (an often-edited message carries its
    /// history); a larger one fails the connection.
    pub max_write_buffer_bytes: usize,
    /// Events a connection may have queued for its socket; a client that lets the
    /// queue fill is disconnected (4008) and catches up with `sync` later. The
    /// queue takes memory only while it holds frames.
    pub queue_capacity: usize,
    /// Most frames gathered into one socket flush.
    pub max_batch: usize,
    /// Frames per connection (GCRA); a frame over it gets a `rate_limited` error.
    pub frame_quota: Quota,
    /// Refused frames per connection before it is closed for flooding (1008).
    pub flood_quota: Quota,
    /// Connections one user may hold on this node (429 `quota_exceeded` above).
    pub max_connections_per_user: usize,
    /// At most one `typing` per conversation is forwarded per this interval.
    pub typing_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed
    /// (1001).
    pub idle_timeout: Duration,
    /// A WebSocket ping goes to a connection that received nothing for this long,
    /// so live clients answer and dead ones are found.
    pub ping_interval: Duration,
    /// How long the last frames and the close frame may take to go out.
    pub close_timeout: Duration,
    /// How long one socket write may block before the peer counts as not reading
    /// (closed as a slow consumer).
    pub write_timeout: Duration,
    /// Most events one `sync` frame returns (they go out with its ack, outside
    /// the event queue).
    pub max_sync_page: usize,
}

impl Default for WsConfig {
    /// 48 KiB frames (64 KiB messages), 8 KiB buffers, a queue of 256 frames,
    /// 30 frames/s per connection bursting to 60, closed after 20 refused frames,
    /// 16 connections per user, typing every 2 s, 90 s idle, pings after 30 s.
    fn default() -> Self {
        Self {
            max_frame_bytes: 48 * 1024,
            max_message_bytes: 64 * 1024,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 8 * 1024,
            max_write_buffer_bytes: 4 * 1024 * 1024,
            queue_capacity: 256,
            max_batch: 64,
            frame_quota: Quota {
                limit: 30,
                period_secs: 1,
                burst: Some(60),
            },
            flood_quota: Quota {
                limit: 10,
                period_secs: 10,
                burst: Some(20),
            },
            max_connections_per_user: 16,
            typing_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(90),
            ping_interval: Duration::from_secs(30),
            close_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            max_sync_page: 100,
        }
    }
}

impl WsConfig {
    /// Checks the configuration can be enforced. The server also clamps values at
    /// use (a zero queue becomes one), so a bad value never panics; this is for
    /// refusing a bad configuration file at start.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_frame_bytes == 0 || self.max_frame_bytes > self.max_message_bytes {
            return Err("max_frame_bytes must be 1 to max_message_bytes");
        }
        if self.read_buffer_bytes == 0 {
            return Err("read_buffer_bytes must be at least 1");
        }
        if self.max_write_buffer_bytes <= self.write_buffer_bytes {
            return Err("max_write_buffer_bytes must exceed write_buffer_bytes");
        }
        if self.queue_capacity == 0 || self.max_batch == 0 {
            return Err("queue_capacity and max_batch must be at least 1");
        }
        if self.max_connections_per_user == 0 || self.max_sync_page == 0 {
            return Err("max_connections_per_user and max_sync_page must be at least 1");
        }
        self.frame_quota.validate()?;
        self.flood_quota.validate()?;
        if self.idle_timeout.is_zero() || self.ping_interval.is_zero() {
            return Err("idle_timeout and ping_interval must be positive");
        }
        Ok(())
    }

    /// The outgoing buffer ceiling tungstenite is given: above the gather size, or
    /// tungstenite would refuse the configuration by panicking.
    pub(crate) fn write_ceiling(&self) -> usize {
        self.max_write_buffer_bytes
            .max(self.write_buffer_bytes.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(WsConfig::default().validate(), Ok(()));
        let bad = WsConfig {
            max_write_buffer_bytes: 8 * 1024,
            ..WsConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(bad.write_ceiling() > bad.write_buffer_bytes);
        assert!(
            WsConfig {
                queue_capacity: 0,
                ..WsConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
