//! Errors as a person reads them: one message, no `Debug` dump, no error-kind prefixes.

use datafusion::error::DataFusionError;

/// A failed statement, with a message meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    message: String,
}

impl SqlError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<DataFusionError> for SqlError {
    fn from(err: DataFusionError) -> Self {
        Self::new(describe(&err))
    }
}

impl From<iceberg::Error> for SqlError {
    fn from(err: iceberg::Error) -> Self {
        Self::new(describe_iceberg(&err))
    }
}

/// The message of a DataFusion error without its wrapping ("External error: ...") and backtrace.
pub fn describe(err: &DataFusionError) -> String {
    match err {
        DataFusionError::Plan(message)
        | DataFusionError::Execution(message)
        | DataFusionError::Configuration(message) => message.trim().to_string(),
        DataFusionError::NotImplemented(message) => format!("not supported: {}", message.trim()),
        DataFusionError::SQL(err, _) => format!("syntax error: {err}"),
        DataFusionError::SchemaError(err, _) => err.to_string(),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            describe(inner)
        }
        DataFusionError::Shared(inner) => describe(inner),
        DataFusionError::External(inner) => describe_external(inner.as_ref()),
        DataFusionError::ArrowError(err, _) => err.to_string(),
        DataFusionError::Collection(errors) => {
            errors.iter().map(describe).collect::<Vec<_>>().join("; ")
        }
        other => other.strip_backtrace(),
    }
}

fn describe_external(err: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(err) = err.downcast_ref::<iceberg::Error>() {
        return describe_iceberg(err);
    }
    if let Some(err) = err.downcast_ref::<DataFusionError>() {
        return describe(err);
    }
    if let Some(err) = err.downcast_ref::<SqlError>() {
        return err.message.clone();
    }
    err.to_string()
}

/// An iceberg error's own message, then its causes (skipping repeats), without the kind prefix
/// and context dump of its `Display`.
pub fn describe_iceberg(err: &iceberg::Error) -> String {
    let mut message = err.message().trim().to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(text.trim());
        }
        source = cause.source();
    }
    message
}

/// `Err(SqlError)` as the `DataFusionError` DataFusion's traits return, keeping the message.
pub fn to_datafusion(err: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_are_peeled_off() {
        let iceberg = iceberg::Error::new(iceberg::ErrorKind::TableNotFound, "no table t");
        let err = DataFusionError::Context(
            "while planning".into(),
            Box::new(DataFusionError::External(Box::new(iceberg))),
        );
        assert_eq!(SqlError::from(err).message(), "no table t");
        let err = DataFusionError::Plan("table 'x' not found".into());
        assert_eq!(SqlError::from(err).message(), "table 'x' not found");
        let err = to_datafusion(SqlError::new("friendly"));
        assert_eq!(SqlError::from(err).message(), "friendly");
    }
}
