//! End-to-end test support lives in floe-testkit; this crate only hosts the test binary.
