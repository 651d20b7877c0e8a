//! Tests of the engine without sockets: a scripted peer ([`dialog_rules`]) and two engines on a
//! simulated network ([`pair`], [`simulation`]).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

mod dialog_rules;
pub mod pair;
mod simulation;

use std::net::SocketAddr;

use crate::sdp::{self, T38Params};

/// A T.38 offer or answer for a media port (address 10.0.0.9).
pub fn t38(port: u16, version: u64) -> Vec<u8> {
    let at = SocketAddr::from(([10, 0, 0, 9], port));
    sdp::t38(1, version, at, &T38Params::default())
}

/// A G.711 audio offer for a media port.
pub fn audio(port: u16, version: u64) -> Vec<u8> {
    sdp::audio(1, version, SocketAddr::from(([10, 0, 0, 9], port)))
}
