//! Security regression tests of issue 14, in one test binary: each module replays the findings of one topic
//! against the real `faxhub serve` (and the real fax server runtime) on loopback and asserts the fixed
//! behaviour. One binary keeps the suite's link and start-up time small; add a `mod` line per topic.

mod inputs;
