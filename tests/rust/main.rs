//! Floe's end-to-end tests: the real `floe serve` binary, driven by real clients.
//!
//! One test binary (modules below) keeps link time and disk down. Each test starts its own server
//! on a free loopback port with its own data directory (see `floe-testkit`).

mod support;

mod auth;
mod backup;
mod bad_input;
mod campaign;
mod concurrency;
mod console;
mod crash;
mod disk_full;
mod etag;
mod hardening;
mod idempotency;
mod integrity;
mod leases;
mod lifecycle;
mod locations;
mod maintenance;
mod metadata_log;
mod metastore_tls;
mod names;
mod observability;
mod remote_signing;
mod repair;
mod replicas;
mod s3;
mod scheduler;
mod scrub;
mod secrets;
mod sql;
mod transactions;
mod vending;
mod views;
mod warehouses;
