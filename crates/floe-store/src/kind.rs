//! Tables and views share one set of pointer rows (see *Views* in the crate docs): a row's kind
//! says which it is, and the errors about a name follow the kind that holds it.

use crate::{Result, StoreError, TableName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Table,
    View,
}

impl Kind {
    /// The value of the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::View => "view",
        }
    }

    /// Reads the `kind` column; the schema's CHECK allows nothing else.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "table" => Ok(Self::Table),
            "view" => Ok(Self::View),
            other => Err(StoreError::Internal(format!(
                "a pointer row has the unknown kind {other:?}"
            ))),
        }
    }

    pub fn not_found(self, name: &TableName) -> StoreError {
        match self {
            Self::Table => StoreError::TableNotFound(name.clone()),
            Self::View => StoreError::ViewNotFound(name.clone()),
        }
    }

    /// The error for a name that a row of this kind already holds.
    pub fn already_exists(self, name: &TableName) -> StoreError {
        match self {
            Self::Table => StoreError::TableAlreadyExists(name.clone()),
            Self::View => StoreError::ViewAlreadyExists(name.clone()),
        }
    }
}
