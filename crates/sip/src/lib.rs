//! SIP for faxhub's fax servers (RFC 3261): what it takes to place and answer T.38 fax calls through a
//! registrar / proxy such as Kamailio.
//!
//! * [`message`]: parsing and serializing requests and responses, URIs, Via, tags (fuzzed).
//! * [`digest`]: digest authentication, MD5 and SHA-256 (RFC 7616, RFC 8760).
//! * [`sdp`]: T.38 (`m=image <port> udptl t38`) and G.711 offers and answers.
//! * [`transaction`]: client and server transactions with timers A to K (RFC 3261 §17).
//! * [`engine`]: the user agent core, an [`Engine`]: REGISTER with refresh, outgoing and incoming INVITE
//!   dialogs (`dialog.rs`, §12 to §15) with ACK, re-INVITE, UPDATE, BYE and CANCEL, OPTIONS answered and
//!   sent as keep-alives.
//! * [`ua`] (feature `tokio`, on by default): the engine on tokio UDP and TCP sockets, with async
//!   handles ([`ua::UserAgent`], [`ua::Call`], [`ua::Incoming`]).
//!
//! Everything but [`ua`] is sans I/O: no sockets, clocks, threads or tokio; randomness (tags, branches,
//! Call-IDs) comes from a seed. Passwords are used for digests only and never logged. Every fallible
//! function returns the one [`Error`].
//!
//! # Calling contract of the [`Engine`]
//!
//! Time is a [`Duration`](std::time::Duration) since any fixed origin, supplied by the caller and never
//! going back. Build the engine with [`Engine::new`] (configuration, the address the transport is bound
//! to, a seed). Then feed it every input:
//!
//! * a UDP datagram to [`Engine::handle_datagram`], a message framed from a TCP connection
//!   ([`Message::parse_prefix`]) to [`Engine::handle_stream_message`];
//! * a user's [`engine::Command`] to [`Engine::handle_command`], which returns the [`engine::Op`] that the
//!   command's result event will carry;
//! * the passing of time to [`Engine::handle_timeout`], once [`Engine::poll_timeout`] is reached.
//!
//! After every input, drain [`Engine::poll_output`] until it returns `None`: send each
//! [`engine::Transmit`] (over TCP on the connection to or from its address, opening one if needed) and
//! act on each [`engine::Event`]; then wait for the next input or for [`Engine::poll_timeout`] (`None`:
//! no timer runs). Nothing reached by received bytes panics.
//!
//! Why our own: the existing crates were weighed first. `rsipstack` is mature and carries T.38 SDP as
//! opaque bytes, but it owns its transports, timers and tasks (not sans I/O, so transactions cannot be
//! driven by a test clock or fuzzed without sockets) and needs in-dialog requests routed by hand through
//! its dialog layer; `ezk-sip-*`'s typed SDP cannot express `m=image ... udptl t38`; `rsip` is a message
//! model only. A fax server needs a small, fixed subset of SIP (one account, INVITE dialogs with T.38,
//! REGISTER, OPTIONS), which this crate covers in the same sans-I/O shape as `t30` and `t38`.

mod dialog;
pub mod digest;
pub mod engine;
mod error;
pub mod message;
pub mod sdp;
pub mod transaction;
#[cfg(feature = "tokio")]
pub mod ua;

#[cfg(test)]
mod tests;

pub use engine::Engine;
pub use error::Error;
pub use message::{Message, StartLine, Uri};
