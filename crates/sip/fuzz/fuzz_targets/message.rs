//! Any bytes into the SIP message parser (datagram and stream framing), the SDP parser and the digest
//! challenge parser: no panic, and whatever parses serializes and parses again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let _ = m.check();
        let _ = (m.cseq(), m.branch(), m.from_tag(), m.to_tag(), m.header_values("Via"));
        if let Some(v) = m.header("Contact") {
            let _ = sip::message::addr_uri(v);
        }
        if let Some(v) = m.header("WWW-Authenticate") {
            let _ = sip::digest::Challenge::parse(v);
        }
        let again = Message::parse(&m.to_bytes()).expect("our own output parses");
        assert_eq!(again.start, m.start);
        assert_eq!(again.body, m.body);
    }
    let _ = Message::parse_prefix(data);
    let _ = sip::sdp::Sdp::parse(data);
});
