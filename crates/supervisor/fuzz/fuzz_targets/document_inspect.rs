//! Uploaded documents are untrusted: recognising and counting pages must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = supervisor::docstore::inspect(data.to_vec().into());
});
