//! SIP for faxhub's fax servers (RFC 3261): what it takes to place and answer T.38 fax calls through a
//! registrar / proxy such as Kamailio.
//!
//! * [`message`]: parsing and serializing requests and responses, URIs, Via, tags (fuzzed).
//! * [`digest`]: digest authentication, MD5 and SHA-256 (RFC 7616, RFC 8760).
//! * [`sdp`]: T.38 (`m=image <port> udptl t38`) and G.711 offers and answers.
//! * [`transaction`]: client and server transactions with timers A to K, sans I/O.
//! * [`ua`]: a user agent on a tokio UDP socket: REGISTER with refresh, outgoing and incoming INVITE
//!   dialogs with ACK, re-INVITE, BYE and CANCEL, OPTIONS answered.
//!
//! The protocol parts are sans I/O (bytes and time in, bytes and events out); only [`ua`] touches a
//! socket and the clock. Passwords are used for digests only and never logged.

pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod ua;

pub use message::{Message, ParseError, StartLine, Uri};
