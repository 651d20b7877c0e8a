//! Recipient numbers come from clients: normalising any string must never panic, and a result is E.164.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(n) = supervisor::numbers::normalize(text, &supervisor::config::DialConfig::default()) {
        assert!(n.starts_with('+') && n[1..].bytes().all(|b| b.is_ascii_digit()) && (9..=16).contains(&n.len()));
    }
});
