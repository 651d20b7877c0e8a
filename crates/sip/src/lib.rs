//! SIP for faxhub's fax servers (RFC 3261): what it takes to place and answer T.38 fax calls through a
//! registrar / proxy such as Kamailio.
//!
//! * [`message`]: parsing and serializing requests and responses, URIs, Via, tags (fuzzed).
//! * [`digest`]: digest authentication, MD5 and SHA-256 (RFC 7616, RFC 8760).
//! * [`sdp`]: T.38 (`m=image <port> udptl t38`) and G.711 offers and answers.
//! * [`transaction`]: client and server transactions with timers A to K, sans I/O.
//! * [`ua`]: a user agent on tokio UDP and TCP sockets: REGISTER with refresh, outgoing and incoming
//!   INVITE dialogs with ACK, re-INVITE, UPDATE, BYE and CANCEL, OPTIONS answered and sent as keep-alives.
//!
//! The protocol parts are sans I/O (bytes and time in, bytes and events out); only [`ua`] touches a
//! socket and the clock. Passwords are used for digests only and never logged.
//!
//! Why our own: the existing crates were weighed first. `rsipstack` is mature and carries T.38 SDP as
//! opaque bytes, but it owns its transports, timers and tasks (not sans I/O, so transactions cannot be
//! driven by a test clock or fuzzed without sockets) and needs in-dialog requests routed by hand through
//! its dialog layer; `ezk-sip-*`'s typed SDP cannot express `m=image ... udptl t38`; `rsip` is a message
//! model only. A fax server needs a small, fixed subset of SIP (one account, INVITE dialogs with T.38,
//! REGISTER, OPTIONS), which this crate covers in the same sans-I/O shape as `t30` and `t38`.

pub mod digest;
mod error;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod ua;

pub use error::Error;
pub use message::{Message, StartLine, Uri};
