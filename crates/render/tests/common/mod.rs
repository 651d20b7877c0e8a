//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../../../testkit/src/gate.rs"]
mod gate;

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
    gate::needs(
        "ghostscript (gs)",
        ok,
        "install the Debian package `ghostscript`",
    )
}
