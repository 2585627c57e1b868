//! Securables as paths, so that "contains" is a prefix test, and their text form for the CLI.

use floe_store::Securable;

/// One step from the server down to a securable. Tables and views are leaves, marked as such so that
/// a table `a.b` is never mistaken for a namespace `a.b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Warehouse(String),
    Level(String),
    Table(String),
    View(String),
}

/// The steps from the server to `securable` (empty for the server itself).
pub(crate) fn steps(securable: &Securable) -> Vec<Step> {
    let mut path = Vec::new();
    let (warehouse, namespace, leaf) = match securable {
        Securable::Server => return path,
        Securable::Warehouse(warehouse) => (warehouse, &[][..], None),
        Securable::Namespace {
            warehouse,
            namespace,
        } => (warehouse, namespace.as_slice(), None),
        Securable::Table {
            warehouse,
            namespace,
            name,
        } => (
            warehouse,
            namespace.as_slice(),
            Some(Step::Table(name.clone())),
        ),
        Securable::View {
            warehouse,
            namespace,
            name,
        } => (
            warehouse,
            namespace.as_slice(),
            Some(Step::View(name.clone())),
        ),
    };
    path.push(Step::Warehouse(warehouse.clone()));
    path.extend(namespace.iter().cloned().map(Step::Level));
    path.extend(leaf);
    path
}

/// `securable` in the CLI's text form: `server`, `warehouse:W`, `namespace:W:a.b`,
/// `table:W:a.b.t`, `view:W:a.b.v`.
pub fn format_securable(securable: &Securable) -> String {
    match securable {
        Securable::Server => "server".to_string(),
        Securable::Warehouse(warehouse) => format!("warehouse:{warehouse}"),
        Securable::Namespace {
            warehouse,
            namespace,
        } => format!("namespace:{warehouse}:{}", namespace.join(".")),
        Securable::Table {
            warehouse,
            namespace,
            name,
        } => format!("table:{warehouse}:{}.{name}", namespace.join(".")),
        Securable::View {
            warehouse,
            namespace,
            name,
        } => format!("view:{warehouse}:{}.{name}", namespace.join(".")),
    }
}

/// Parses the text form of [`format_securable`]. Namespace levels are split at `.`; a level that
/// itself contains a `.` can only be named through the management API's JSON form.
pub fn parse_securable(text: &str) -> Result<Securable, String> {
    let usage = || {
        format!(
            "invalid securable {text:?}: expected server, warehouse:W, namespace:W:a.b, \
             table:W:a.b.t or view:W:a.b.v"
        )
    };
    if text == "server" {
        return Ok(Securable::Server);
    }
    let (kind, rest) = text.split_once(':').ok_or_else(usage)?;
    let (warehouse, dotted) = match rest.split_once(':') {
        Some((warehouse, dotted)) => (warehouse, Some(dotted)),
        None => (rest, None),
    };
    if warehouse.is_empty() {
        return Err(usage());
    }
    let warehouse = warehouse.to_string();
    let levels = |dotted: Option<&str>| -> Result<Vec<String>, String> {
        let dotted = dotted.ok_or_else(usage)?;
        let levels: Vec<String> = dotted.split('.').map(str::to_string).collect();
        if levels.iter().any(String::is_empty) {
            return Err(usage());
        }
        Ok(levels)
    };
    match kind {
        "warehouse" if dotted.is_none() => Ok(Securable::Warehouse(warehouse)),
        "namespace" => Ok(Securable::Namespace {
            warehouse,
            namespace: levels(dotted)?,
        }),
        "table" | "view" => {
            let mut namespace = levels(dotted)?;
            let name = namespace.pop().ok_or_else(usage)?;
            if namespace.is_empty() {
                return Err(usage());
            }
            Ok(if kind == "table" {
                Securable::Table {
                    warehouse,
                    namespace,
                    name,
                }
            } else {
                Securable::View {
                    warehouse,
                    namespace,
                    name,
                }
            })
        }
        _ => Err(usage()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for text in [
            "server",
            "warehouse:main",
            "namespace:main:sales",
            "namespace:lake:sales.eu",
            "table:main:sales.orders",
            "view:main:sales.eu.top",
        ] {
            let securable = parse_securable(text).unwrap();
            assert_eq!(format_securable(&securable), text);
        }
        for bad in [
            "",
            "table:main:orders",
            "namespace:main",
            "namespace:main:a..b",
            "warehouse:",
            "warehouse:main:x",
            "bucket:main",
        ] {
            assert!(parse_securable(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tables_and_namespaces_of_one_name_have_different_paths() {
        let namespace = parse_securable("namespace:main:a.b").unwrap();
        let table = parse_securable("table:main:a.b").unwrap();
        assert_ne!(steps(&namespace), steps(&table));
        assert_eq!(steps(&namespace)[..2], steps(&table)[..2]);
    }
}
