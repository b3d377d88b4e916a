//! Keys the platform keeps in its data dir: the hash of the operator key (the key
//! itself is printed once and never stored) and the seed of the token-signing key
//! (so access tokens survive restarts). Both files are created with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use caas_crypto::secret::{SecretHash, TenantSecret};

use super::PlatformError;

const OPERATOR_HASH: &str = "operator-key.sha256";
const SIGNING_SEED: &str = "token-signing.seed";
const ENCRYPTION_KEY: &str = "encryption.kek";
const NODE_ID: &str = "node-id";

/// The operator credential's hash, and the key itself when it was generated now.
#[derive(Debug)]
pub(crate) struct Operator {
    pub(crate) hash: SecretHash,
    pub(crate) generated: Option<TenantSecret>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn write_private(path: &Path, content: &[u8]) -> Result<(), PlatformError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PlatformError::Io(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(|e| PlatformError::Io(format!("cannot write {}: {e}", path.display())))
}

fn configured_operator(key: &str) -> Result<Operator, PlatformError> {
    let secret = TenantSecret::parse(key).map_err(|_| {
        PlatformError::Config(
            "CAAS_OPERATOR_KEY must look like `sk_` followed by 43 base64url characters".into(),
        )
    })?;
    Ok(Operator {
        hash: secret.hash(),
        generated: None,
    })
}

/// The keys of a platform on memory storage: the operator credential from
/// configuration or generated, and a fresh signing seed, written nowhere. Its
/// tokens die with it, as its data does, and never verify on another platform
/// that shares the data dir.
pub(crate) fn ephemeral(configured: Option<&str>) -> Result<(Operator, [u8; 32]), PlatformError> {
    let operator = match configured {
        Some(key) => configured_operator(key)?,
        None => {
            let secret = TenantSecret::generate().map_err(|e| PlatformError::Io(e.to_string()))?;
            Operator {
                hash: secret.hash(),
                generated: Some(secret),
            }
        }
    };
    let seed = caas_crypto::random::array::<32>().map_err(|e| PlatformError::Io(e.to_string()))?;
    Ok((operator, seed))
}

/// The operator credential: from configuration, from the data dir, or generated.
pub(crate) fn operator(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<Operator, PlatformError> {
    if let Some(key) = configured {
        return configured_operator(key);
    }
    let path = data_dir.join(OPERATOR_HASH);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = unhex::<32>(&text).ok_or_else(|| {
                PlatformError::Config(format!(
                    "{} is corrupt; delete it to generate a new operator key",
                    path.display()
                ))
            })?;
            Ok(Operator {
                hash: SecretHash::from_bytes(bytes),
                generated: None,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = TenantSecret::generate().map_err(|e| PlatformError::Io(e.to_string()))?;
            write_private(&path, hex(secret.hash().as_bytes()).as_bytes())?;
            Ok(Operator {
                hash: secret.hash(),
                generated: Some(secret),
            })
        }
        Err(e) => Err(PlatformError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The token-signing seed, generated on first start.
pub(crate) fn signing_seed(data_dir: &Path) -> Result<[u8; 32], PlatformError> {
    let path = data_dir.join(SIGNING_SEED);
    match std::fs::read_to_string(&path) {
        Ok(text) => unhex::<32>(&text)
            .ok_or_else(|| PlatformError::Config(format!("{} is corrupt", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed =
                caas_crypto::random::array::<32>().map_err(|e| PlatformError::Io(e.to_string()))?;
            write_private(&path, hex(&seed).as_bytes())?;
            Ok(seed)
        }
        Err(e) => Err(PlatformError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// A random name for this process, for leases (webhook delivery).
pub(crate) fn random_node_id() -> Result<String, PlatformError> {
    let bytes = caas_crypto::random::array::<8>().map_err(|e| PlatformError::Io(e.to_string()))?;
    Ok(format!("node-{}", hex(&bytes)))
}

/// This data dir's node name, generated on first start: a node that restarts
/// on its (locked) data dir takes back its own leases at once instead of
/// waiting for them to run out.
pub(crate) fn node_id(data_dir: &Path) -> Result<String, PlatformError> {
    let path = data_dir.join(NODE_ID);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.starts_with("node-") && text.len() == 21 => Ok(text),
        Ok(_) => Err(PlatformError::Config(format!(
            "{} is corrupt",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = random_node_id()?;
            write_private(&path, id.as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(PlatformError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The key-encryption key of at-rest encryption: from `configured` (the
/// `CAAS_ENCRYPTION_KEY` variable: 32 bytes as 64 hex digits), else from the data
/// dir, generated there on first start. Its id is derived from its bytes, so the
/// same key reads the same keyrings whichever way it is given, and a different
/// one is refused by name instead of misreading them.
pub(crate) fn encryption_key(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<caas_crypto::keys::KeyEncryptionKey, PlatformError> {
    let bytes = match configured {
        Some(text) => unhex::<32>(text).ok_or_else(|| {
            PlatformError::Config(
                "CAAS_ENCRYPTION_KEY must be 32 bytes written as 64 hex digits".into(),
            )
        })?,
        None => {
            let path = data_dir.join(ENCRYPTION_KEY);
            match std::fs::read_to_string(&path) {
                Ok(text) => unhex::<32>(&text).ok_or_else(|| {
                    PlatformError::Config(format!("{} is corrupt", path.display()))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = caas_crypto::random::array::<32>()
                        .map_err(|e| PlatformError::Io(e.to_string()))?;
                    write_private(&path, hex(&key).as_bytes())?;
                    key
                }
                Err(e) => {
                    return Err(PlatformError::Io(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    };
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let id = format!("kek-{}", hex(&fingerprint.as_ref()[..6]));
    let id = caas_crypto::KeyId::new(&id).map_err(|e| PlatformError::Io(e.to_string()))?;
    caas_crypto::keys::KeyEncryptionKey::from_bytes(id, &bytes)
        .map_err(|e| PlatformError::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_kept_private_and_reloaded() {
        let dir = std::env::temp_dir().join(format!(
            "caas-keys-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let first = operator(&dir, None).unwrap();
        let key = first.generated.expect("generated on first start");
        let again = operator(&dir, None).unwrap();
        assert!(again.generated.is_none(), "printed only once");
        assert!(again.hash.ct_eq(&key.hash()));
        let stored = std::fs::read_to_string(dir.join(OPERATOR_HASH)).unwrap();
        assert!(
            !stored.contains(&key.expose_secret()[3..]),
            "the key itself is never stored"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(OPERATOR_HASH))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(signing_seed(&dir).unwrap(), signing_seed(&dir).unwrap());
        assert!(operator(&dir, Some("not-a-key")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The README's command for making an operator key gives what the platform
    /// accepts (the canonical base64url of 32 bytes: the last character carries
    /// padding bits that must be zero, which `base64` always writes as zero).
    #[test]
    fn the_readme_command_makes_an_accepted_operator_key() {
        let readme = include_str!("../../README.md");
        let command = readme
            .lines()
            .find(|l| l.starts_with("printf 'sk_"))
            .expect("the README shows how to make CAAS_OPERATOR_KEY");
        for _ in 0..8 {
            let out = std::process::Command::new("sh")
                .args(["-c", command])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let key = String::from_utf8(out.stdout).unwrap();
            let key = key.strip_suffix('\n').unwrap_or(&key);
            assert_eq!(key.len(), 3 + 43, "{key}");
            configured_operator(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    fn fastrand_suffix() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}
