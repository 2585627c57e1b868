//! HTTP handlers: each one parses, calls the catalog, and maps the result. No SQL, no paths here.

pub mod config;
pub mod health;
pub mod maintenance;
pub mod namespaces;
pub mod scrub;
pub mod server;
pub mod sql;
pub mod tables;
pub mod views;
pub mod warehouses;
