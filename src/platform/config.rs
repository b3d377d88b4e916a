//! Platform configuration: a TOML file (`--config`) overridden by environment
//! variables, with the names of `api.md` shared by every example binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the platform can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformConfig {
    /// Address of the HTTP and WebSocket listener (`CAAS_LISTEN`).
    pub listen: SocketAddr,
    /// Embedded storage, blobs, generated keys (`CAAS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The operator credential (`CAAS_OPERATOR_KEY`); generated into the data dir
    /// (only its hash is kept) and printed once when absent.
    pub operator_key: Option<String>,
    /// Log filter (`CAAS_LOG`); logs are JSON lines on stderr.
    pub log: String,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Requests per minute per client IP at the edge (0 turns the limit off).
    pub edge_requests_per_minute: u32,
    /// WebSocket frames per second per connection before `rate_limited` (bursts
    /// of twice that).
    pub ws_frames_per_second: u32,
    /// Browser origins allowed to call the API (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Seconds a client may take to send a whole request head, from the
    /// connection opening or the head's first byte.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests.
    pub keep_alive_timeout_secs: u64,
    /// Open connections (HTTP and WebSocket) per client IPv4 address or IPv6 /64;
    /// `429` beyond it.
    pub max_connections_per_ip: usize,
    /// Open connections in all; `0` (the default) takes the most the process's
    /// open-file limit leaves room for. `503` beyond it.
    pub max_connections: usize,
    /// Seconds shutdown waits for requests in flight before closing what is left.
    pub shutdown_timeout_secs: u64,
    /// SQLite `synchronous=FULL` (true, the default) or `NORMAL` (false: a power
    /// loss may lose the last commits; a process crash loses nothing).
    pub durable: bool,
    /// Where data lives (`CAAS_STORAGE`): `embedded` (SQLite and files under the
    /// data dir, the default) or `memory` (nothing survives a restart: for
    /// throwaway runs and for benchmarking the transport without storage).
    pub storage: Storage,
    /// At-rest encryption of message bodies (`[encryption]`).
    pub encryption: EncryptionConfig,
}

/// `[encryption]`: per-tenant at-rest encryption of message bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Seal every tenant's message bodies (in messages, edits, the `sync` log)
    /// under a data key of its own, and search them by blind tokens
    /// (`CAAS_ENCRYPTION=on|off`). Bodies sealed before stay readable when it is
    /// switched off again, as long as the key is given.
    pub enabled: bool,
    /// The key-encryption key that wraps every tenant's data keys, as 64 hex
    /// digits (`CAAS_ENCRYPTION_KEY`). When absent, one is generated into the
    /// data dir (`encryption.kek`, 0600) on first start: then a copy of the data
    /// dir holds both the data and its key, so give it from a secret store for
    /// protection against a stolen disk or backup.
    pub key: Option<String>,
}

/// Where the platform keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// SQLite and local files under the data dir.
    #[default]
    Embedded,
    /// In process memory only: everything is lost when the process stops.
    Memory,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./caas-data"),
            operator_key: None,
            log: "info".into(),
            max_body_bytes: 64 * 1024,
            edge_requests_per_minute: 100,
            durable: true,
            cors_origins: Vec::new(),
            header_timeout_secs: 10,
            keep_alive_timeout_secs: 60,
            max_connections_per_ip: 256,
            max_connections: 0,
            shutdown_timeout_secs: 10,
            ws_frames_per_second: 30,
            storage: Storage::Embedded,
            encryption: EncryptionConfig::default(),
        }
    }
}

/// A configuration mistake, in one line.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl PlatformConfig {
    /// The listener's limits.
    pub fn serve_config(&self) -> caas_transport::ServeConfig {
        caas_transport::ServeConfig {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            keep_alive_timeout: std::time::Duration::from_secs(self.keep_alive_timeout_secs),
            max_connections_per_ip: self.max_connections_per_ip,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// Reads `file` (if given) and applies the `CAAS_*` environment variables.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?
            }
            None => PlatformConfig::default(),
        };
        if let Some(v) = env("CAAS_LISTEN") {
            c.listen = v.parse().map_err(|_| {
                ConfigError(format!(
                    "CAAS_LISTEN `{v}` is not an address like 127.0.0.1:8080"
                ))
            })?;
        }
        if let Some(v) = env("CAAS_DATA_DIR") {
            if v.is_empty() {
                return Err(ConfigError("CAAS_DATA_DIR is empty".into()));
            }
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CAAS_OPERATOR_KEY") {
            c.operator_key = Some(v);
        }
        if let Some(v) = env("CAAS_LOG") {
            c.log = v;
        }
        if let Some(v) = env("CAAS_STORAGE") {
            c.storage = match v.as_str() {
                "embedded" => Storage::Embedded,
                "memory" => Storage::Memory,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_STORAGE `{v}` is neither `embedded` nor `memory`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_ENCRYPTION") {
            c.encryption.enabled = match v.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_ENCRYPTION `{v}` is neither `on` nor `off`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_ENCRYPTION_KEY") {
            c.encryption.key = Some(v);
        }
        if c.ws_frames_per_second == 0 {
            return Err(ConfigError(
                "ws_frames_per_second must be at least 1".into(),
            ));
        }
        for (name, secs) in [
            ("header_timeout_secs", c.header_timeout_secs),
            ("keep_alive_timeout_secs", c.keep_alive_timeout_secs),
            ("shutdown_timeout_secs", c.shutdown_timeout_secs),
        ] {
            if secs == 0 || secs > 86_400 {
                return Err(ConfigError(format!("{name} must be 1 to 86400 seconds")));
            }
        }
        if c.max_connections_per_ip == 0 {
            return Err(ConfigError(
                "max_connections_per_ip must be at least 1".into(),
            ));
        }
        if c.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_file_and_mistakes_are_one_line() {
        let dir = std::env::temp_dir().join(format!("caas-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("caas.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\n").unwrap();
        let env = |k: &str| (k == "CAAS_LOG").then(|| "warn".to_owned());
        let c = PlatformConfig::load(Some(&file), env).unwrap();
        assert_eq!((c.listen.port(), c.log.as_str()), (9000, "warn"));
        std::fs::write(&file, "listen = 12\n").unwrap();
        let e = PlatformConfig::load(Some(&file), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("configuration: ") && !e.contains('\n'), "{e}");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(
            PlatformConfig::load(Some(&file), |_| None)
                .unwrap_err()
                .to_string()
                .contains("lisen")
        );
        let bad =
            PlatformConfig::load(None, |k| (k == "CAAS_LISTEN").then(|| "nowhere".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("CAAS_LISTEN"));
        let memory =
            PlatformConfig::load(None, |k| (k == "CAAS_STORAGE").then(|| "memory".to_owned()));
        assert_eq!(memory.unwrap().storage, Storage::Memory);
        let bad = PlatformConfig::load(None, |k| (k == "CAAS_STORAGE").then(|| "disk".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("CAAS_STORAGE"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
