//! Files and directories only their owner can read: the database holds messages
//! and credential hashes, the blob files hold media.
//!
//! Modes are set where the files are created (`mode` on the open or mkdir, so no
//! one can open them in between), and existing ones that group or others can
//! reach are tightened at open. Elsewhere than Unix these are plain creations.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// A file or directory whose group and other permission bits were removed at open,
/// so that the caller can report it (caas-storage does not log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionChange {
    /// The file or directory.
    pub path: PathBuf,
    /// Its Unix mode before (permission bits only, e.g. `0o755`).
    pub before: u32,
    /// Its Unix mode after (e.g. `0o700`).
    pub after: u32,
}

/// Creates `dir` and any missing parents, each new one 0700.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Options that create a missing file as 0600.
pub(crate) fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Opens `path` for writing, creating it 0600 if missing; never truncates.
#[cfg(feature = "sqlite")]
pub(crate) fn create_file(path: &Path) -> io::Result<std::fs::File> {
    file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Removes the group and other bits of `path` if it has any. A missing path is
/// not an error (nothing to protect).
#[cfg(feature = "sqlite")]
pub(crate) fn restrict(path: &Path) -> io::Result<Option<PermissionChange>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        let after = mode & !0o077;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(after))?;
        Ok(Some(PermissionChange {
            path: path.to_path_buf(),
            before: mode,
            after,
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}
