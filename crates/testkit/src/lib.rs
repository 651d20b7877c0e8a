//! Test-only parts of faxhub. The shipped `faxhub` binary does not depend on this crate.
//!
//! - [`ScriptedLine`]: a test double of the fax server's line whose outcomes a test scripts per number.
//! - `faxhub-testnode`: the real fax server runtime (`node` crate) over a `ScriptedLine`, as a process.
//! - [`spandsp`]: the SpanDSP reference fax peer (`spandsp/faxpeer.c`), built at test time, and page
//!   comparison of TIFF files.
//! - [`kamailio`]: a Kamailio registrar and proxy with digest authentication, started on 127.0.0.1.
//! - [`harness`]: starting the real `faxhub` supervisor binary and test fax servers, and a REST client.
//! - [`proxy`]: a TCP proxy between a fax server and its supervisor whose link a test cuts and restores.

pub mod gate;
pub mod harness;
pub mod kamailio;
pub mod proxy;
pub mod scripted;
pub mod spandsp;

pub use scripted::{Script, ScriptedLine};
