//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether ghostscript can be run. When it cannot, a test that needs it is skipped,
/// except under `FAXHUB_SLOW_TESTS=1` (the official suite), where it fails.
pub fn have_gs() -> bool {
    let ok = std::process::Command::new("gs")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("FAXHUB_SLOW_TESTS").is_none(),
            "ghostscript (gs) is required: install the Debian package `ghostscript`"
        );
        eprintln!("skipping: gs not installed");
    }
    ok
}
