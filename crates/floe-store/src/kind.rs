//! Tables and views share one set of pointer rows (see *Views* in the crate docs): a row's kind
//! says which it is, and the errors about a name follow the kind that holds it.

use std::fmt;

use crate::{Result, StoreError, TableName};

/// Which kind of pointer a row is (public as `PointerKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    View,
}

impl Kind {
    /// The value of the `kind` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::View => "view",
        }
    }

    /// Reads the `kind` column; the schema's CHECK allows nothing else.
    pub(crate) fn parse(value: &str) -> Result<Self> {
        match value {
            "table" => Ok(Self::Table),
            "view" => Ok(Self::View),
            other => Err(StoreError::Internal(format!(
                "a pointer row has the unknown kind {other:?}"
            ))),
        }
    }

    pub(crate) fn not_found(self, name: &TableName) -> StoreError {
        match self {
            Self::Table => StoreError::TableNotFound(name.clone()),
            Self::View => StoreError::ViewNotFound(name.clone()),
        }
    }

    /// The error for a name that a row of this kind already holds.
    pub(crate) fn already_exists(self, name: &TableName) -> StoreError {
        match self {
            Self::Table => StoreError::TableAlreadyExists(name.clone()),
            Self::View => StoreError::ViewAlreadyExists(name.clone()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
