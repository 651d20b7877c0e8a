//! Security regression tests: each replays a finding of the hardening review (issue 14) against the real
//! `faxhub serve` (and, where a fax server matters, the real fax server runtime over a scripted line), on
//! loopback only, and asserts the fixed behaviour. One test binary, one module per topic, so the suite links
//! once; every module starts its own supervisors in temporary directories, and a test is named after the
//! finding it guards.

mod access;
mod inputs;
mod outage;
mod transport;
mod webhooks;
