//! Security regression tests: each replays a finding of the hardening review (issue 14) against the real
//! `faxhub serve` on loopback and asserts the fixed behaviour. One test binary, one module per topic, so
//! the suite links once; every module starts its own supervisors in temporary directories.

mod transport;
mod webhooks;
