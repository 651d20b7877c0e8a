//! Link messages come from the network: parsing any bytes must not panic, and whatever parses must
//! serialise and parse back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(env) = protocol::Envelope::from_json(text) {
        let again = protocol::Envelope::from_json(&env.to_json()).expect("a serialised envelope parses");
        assert_eq!(again, env);
    }
});
