//! Security regression tests: each finding of the hardening review (issue 14) replayed against the real
//! `faxhub serve` binary and real fax server processes on loopback, asserting the fixed behaviour. One
//! module per topic; every test starts its own supervisor in its own temporary directory.

mod outage;
