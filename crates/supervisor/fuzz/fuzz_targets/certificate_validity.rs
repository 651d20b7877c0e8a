//! The supervisor reads the validity of its certificate file at each start: any bytes there must not
//! make it panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((from, until)) = supervisor::tls::validity(data) {
        // Both come from four-digit years at most.
        assert!((-62_167_219_200..=253_402_300_799).contains(&from));
        assert!((-62_167_219_200..=253_402_300_799).contains(&until));
    }
});
