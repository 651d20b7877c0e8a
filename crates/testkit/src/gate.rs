//! The one gate for tests that need a tool from outside the workspace (ghostscript, libtiff's tools,
//! SpanDSP, Kamailio): in the official suite (`FAXHUB_SLOW_TESTS` set, as `scripts/test.sh` does) a
//! missing tool fails the test; otherwise the test is skipped and says so. Crates below `testkit` include
//! this file with `#[path]`, so there is one gate with one meaning.

/// Whether the official suite runs: `FAXHUB_SLOW_TESTS` is set to anything but empty or `0`.
pub fn slow_tests() -> bool {
    std::env::var_os("FAXHUB_SLOW_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether a test that needs `what` may run: true when it is `present`. When it is missing, the official
/// suite fails naming `install`; otherwise false (the caller skips) after a line on stderr.
pub fn needs(what: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    assert!(!slow_tests(), "{what} is missing: {install}");
    eprintln!("skipping: {what} is missing ({install})");
    false
}
