//! What a pointer row records about the metadata file it names, so that a reader can tell that
//! file from any other bytes (see *Integrity* in the crate docs): the file's size and its
//! SHA-256, and the one statement that fills them in for rows written before they were recorded,
//! written once for both backends.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::access_sql::{AccessConn, Arg, Executed, Stmt};
use crate::kind::Kind;
use crate::{Result, StoreError};

/// The size and SHA-256 of a metadata file, as its pointer row records them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileChecksum {
    /// The file's size in bytes.
    pub size: u64,
    /// The SHA-256 of the file's bytes.
    pub sha256: [u8; 32],
}

impl FileChecksum {
    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Whether `bytes` are the file this checksum was taken of. The size is compared first: a
    /// truncated or extended file is told without hashing it.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.size == bytes.len() as u64 && *self == Self::of(bytes)
    }

    /// The SHA-256 as 64 lowercase hex digits, as the `metadata_sha256` column holds it.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The columns' values for a statement. A size past `i64::MAX` cannot be a file's.
    pub(crate) fn columns(&self) -> Result<(i64, String)> {
        let size = i64::try_from(self.size).map_err(|_| {
            StoreError::InvalidInput(format!("a file size of {} bytes is not real", self.size))
        })?;
        Ok((size, self.sha256_hex()))
    }

    /// Reads the `metadata_size` and `metadata_sha256` columns of a row: `None` for a row written
    /// before checksums were recorded (both NULL); a row with one and not the other, or a digest
    /// that is not 64 hex digits, is a corrupt store.
    pub(crate) fn from_columns(size: Option<i64>, sha256: Option<String>) -> Result<Option<Self>> {
        match (size, sha256) {
            (None, None) => Ok(None),
            (Some(size), Some(sha256)) => {
                let digest = hex::decode(&sha256)
                    .ok()
                    .and_then(|digest| <[u8; 32]>::try_from(digest).ok());
                match (u64::try_from(size), digest) {
                    (Ok(size), Some(sha256)) => Ok(Some(Self { size, sha256 })),
                    _ => Err(corrupt()),
                }
            }
            _ => Err(corrupt()),
        }
    }
}

impl fmt::Debug for FileChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileChecksum")
            .field("size", &self.size)
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

impl fmt::Display for FileChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, sha256 {}", self.size, self.sha256_hex())
    }
}

fn corrupt() -> StoreError {
    StoreError::Internal(
        "a pointer row's metadata_size and metadata_sha256 do not form a checksum".into(),
    )
}

/// Records `checksum` in the `kind` row `(namespace_key, name)` if it still names
/// `metadata_location` and has no checksum yet: one conditional update, which leaves the version
/// alone, so that a commit racing it either comes first (and the update finds another file named)
/// or after (and replaces the checksum with its own file's). Returns whether the row was updated.
pub(crate) async fn record<C: AccessConn>(
    conn: &mut C,
    kind: Kind,
    namespace_key: &str,
    name: &str,
    metadata_location: &str,
    checksum: &FileChecksum,
) -> Result<bool, C::Error> {
    let (size, sha256) = checksum.columns()?;
    let stmt = Stmt {
        sql: "UPDATE tables SET metadata_size = ?, metadata_sha256 = ? \
              WHERE namespace = ? AND name = ? AND kind = ? AND metadata_location = ? \
              AND metadata_sha256 IS NULL"
            .into(),
        args: vec![
            Arg::Int(size),
            Arg::Text(&sha256),
            Arg::Text(namespace_key),
            Arg::Text(name),
            Arg::Text(kind.as_str()),
            Arg::Text(metadata_location),
        ],
    };
    match conn.execute(&stmt).await? {
        Executed::Rows(rows) => Ok(rows > 0),
        other => Err(StoreError::Internal(format!("{other:?} recording a checksum")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_matches_only_its_own_bytes() {
        let checksum = FileChecksum::of(b"{\"format-version\":2}");
        assert!(checksum.matches(b"{\"format-version\":2}"));
        // Same size, other bytes; and a truncated file.
        assert!(!checksum.matches(b"{\"format-version\":3}"));
        assert!(!checksum.matches(b"{\"format-version\""));
        assert_eq!(checksum.size, 20);
    }

    #[test]
    fn columns_round_trip_and_half_rows_are_refused() {
        let checksum = FileChecksum::of(b"abc");
        let (size, sha256) = checksum.columns().unwrap();
        assert_eq!(
            sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            FileChecksum::from_columns(Some(size), Some(sha256.clone())).unwrap(),
            Some(checksum)
        );
        assert_eq!(FileChecksum::from_columns(None, None).unwrap(), None);
        assert!(FileChecksum::from_columns(Some(3), None).is_err());
        assert!(FileChecksum::from_columns(None, Some(sha256)).is_err());
        assert!(FileChecksum::from_columns(Some(3), Some("xyz".into())).is_err());
    }
}
