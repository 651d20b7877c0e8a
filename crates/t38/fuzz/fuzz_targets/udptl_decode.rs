//! UDPTL datagram decoder on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t38::UdptlPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = UdptlPacket::decode(data) {
        assert_eq!(UdptlPacket::decode(&p.encode()).expect("re-decodes"), p);
    }
});
