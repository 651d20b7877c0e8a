//! IFP decoder on arbitrary bytes, all versions; whatever decodes must
//! re-encode to the same octets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t38::{Error, Ifp, T38Version};

fuzz_target!(|data: &[u8]| {
    for v in T38Version::ALL {
        if let Ok(ifp) = Ifp::decode(data, v) {
            // Padding bits need not be zero on input, so compare values.
            // Version 0 decodes extension values it refuses to send.
            match ifp.encode(v) {
                Ok(again) => assert_eq!(Ifp::decode(&again, v).expect("re-decodes"), ifp),
                Err(Error::NotInVersion { .. }) => assert_eq!(v, T38Version::V0),
                Err(e) => panic!("{ifp} decoded but does not re-encode: {e}"),
            }
        }
    }
});
