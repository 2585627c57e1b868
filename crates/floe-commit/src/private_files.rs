//! Files in the data dir that only the server's user may read: the metadata store (`catalog.db`),
//! the secret key, the first administrator's credential.
//!
//! A private file is written under a temporary name created exclusively (`O_CREAT|O_EXCL`, which
//! never follows a symlink) with mode 0600, synced, and only then given its name: by a hard link,
//! which fails if the name exists, or by a rename, which replaces the name itself. Either way a
//! symlink planted at the name is never written through, and no reader ever sees half a file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) if missing; a directory this creates is readable by its owner
/// only (0700). An existing one keeps its mode: it may be a directory the operator chose.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// What [`write_private_file`] does when `path` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Leave it and return `Ok(false)`: another process wrote it first.
    Keep,
    /// Replace it (the name, never a symlink's target).
    Replace,
}

/// Writes `contents` to `path` with mode 0600 (see the module docs); `Ok(true)` if it wrote.
pub fn write_private_file(path: &Path, contents: &[u8], existing: Existing) -> io::Result<bool> {
    let temp = temp_name(path);
    let result = write_then_name(&temp, path, contents, existing);
    // Gone already after a rename; after a link or a failure it is still there.
    let _ = std::fs::remove_file(&temp);
    result
}

fn write_then_name(
    temp: &Path,
    path: &Path,
    contents: &[u8],
    existing: Existing,
) -> io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(temp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    match existing {
        Existing::Replace => std::fs::rename(temp, path).map(|()| true),
        Existing::Keep => match std::fs::hard_link(temp, path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(err),
        },
    }
}

/// Creates an empty private file at `path` unless something is there already (then it is left as
/// it is); used for files another library opens and fills, such as SQLite's database.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    write_private_file(path, &[], Existing::Keep).map(|_| ())
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_dirs_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("secret.key");
        assert!(write_private_file(&file, b"one", Existing::Keep).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        // Keep: the first writer wins.
        assert!(!write_private_file(&file, b"two", Existing::Keep).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        assert!(write_private_file(&file, b"three", Existing::Replace).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"three");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let planted = root.path().join("admin-credential");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        // Keep: the name exists (as a link), so nothing is written anywhere.
        assert!(!write_private_file(&planted, b"secret", Existing::Keep).unwrap());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // Replace: the link itself is replaced by a private file; its target is untouched.
        assert!(write_private_file(&planted, b"secret", Existing::Replace).unwrap());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&planted).unwrap(), b"secret");
        assert_eq!(mode(&planted), 0o600);
    }
}
