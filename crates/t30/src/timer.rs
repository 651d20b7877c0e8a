//! The T.30 time-outs (T.30 §5.4.3) as one closed set, and the table of their deadlines.
//!
//! Shaped as quinn-proto keeps its connection timers: one deadline slot per timer, set and stopped by
//! the procedure; the earliest is what the caller is told to wait for, and none means nothing is due.
//! T3 (the wait for an operator after a procedure interrupt) has no variant: the session takes part in
//! no procedure interrupt. Pacing is not a timer: the T.38 front end's queue of timed IFPs
//! ([`crate::t38_terminal::Transmitter::next_due`]) is the other source of the session's deadline.

use std::time::Duration;

/// A T.30 timer. Declared in the order in which timers that have expired together are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// T1 (§5.4.3, 35 ± 5 s): the terminals must have identified each other by then. Runs from the
    /// start of the call until the sender has a DIS or the receiver a DCS it takes.
    T1,
    /// T2 (§5.4.3, 6 ± 1 s): a receiver waiting for a command, for the TCF or for image data.
    T2,
    /// T4 (§5.4.3, 3 s ± 15 %): a sender waiting for the response to a command, which it repeats when
    /// T4 expires.
    T4,
    /// T5 (§5.4.3, 60 ± 5 s, error correction mode only): a sender waiting, with RR, for a receiver that
    /// answered RNR to be ready. Runs from the first RNR until any other response.
    T5,
}

impl Timer {
    /// Every timer, in the order of the declaration.
    pub(crate) const ALL: [Timer; 4] = [Timer::T1, Timer::T2, Timer::T4, Timer::T5];
}

/// When each timer expires; a stopped timer has no deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    deadlines: [Option<Duration>; Timer::ALL.len()],
}

impl TimerTable {
    /// Starts `timer` (again) to expire at `deadline`.
    pub(crate) fn set(&mut self, timer: Timer, deadline: Duration) {
        self.deadlines[timer as usize] = Some(deadline);
    }

    /// Stops `timer`; stopping a stopped timer does nothing.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// When `timer` expires, if it runs.
    pub(crate) fn get(&self, timer: Timer) -> Option<Duration> {
        self.deadlines[timer as usize]
    }

    /// The earliest deadline of all running timers.
    pub(crate) fn next_timeout(&self) -> Option<Duration> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The running timers whose deadline is at or before `now`, in the order of [`Timer::ALL`], as the
    /// table is now (it may be changed while they are gone through). They keep running until stopped.
    pub(crate) fn expired(&self, now: Duration) -> impl Iterator<Item = Timer> + use<> {
        let table = *self;
        Timer::ALL
            .into_iter()
            .filter(move |t| table.get(*t).is_some_and(|d| d <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn an_empty_table_has_no_deadline_and_nothing_expires() {
        let t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        assert_eq!(t.expired(Duration::MAX).next(), None);
    }

    #[test]
    fn set_stop_and_the_earliest_deadline() {
        let mut t = TimerTable::default();
        t.set(Timer::T1, s(35));
        t.set(Timer::T4, s(3));
        assert_eq!(t.next_timeout(), Some(s(3)));
        assert_eq!(t.get(Timer::T1), Some(s(35)));
        // Setting again moves the deadline, later or earlier.
        t.set(Timer::T4, s(40));
        assert_eq!(t.next_timeout(), Some(s(35)));
        t.set(Timer::T4, s(1));
        assert_eq!(t.next_timeout(), Some(s(1)));
        t.stop(Timer::T4);
        t.stop(Timer::T4);
        assert_eq!(t.get(Timer::T4), None);
        assert_eq!(t.next_timeout(), Some(s(35)));
        t.stop(Timer::T1);
        assert_eq!(t.next_timeout(), None);
    }

    #[test]
    fn a_clock_that_jumps_finds_every_passed_deadline_in_timer_order() {
        let mut t = TimerTable::default();
        t.set(Timer::T5, s(60));
        t.set(Timer::T4, s(3));
        t.set(Timer::T1, s(35));
        assert_eq!(t.expired(s(2)).collect::<Vec<_>>(), []);
        // Exactly at the deadline counts as expired.
        assert_eq!(t.expired(s(3)).collect::<Vec<_>>(), [Timer::T4]);
        // A jump over two deadlines finds both, in the declared order, not by deadline.
        assert_eq!(
            t.expired(s(100)).collect::<Vec<_>>(),
            [Timer::T1, Timer::T4, Timer::T5]
        );
        // Expired timers run until stopped; a stopped one no longer shows.
        t.stop(Timer::T1);
        assert_eq!(
            t.expired(s(100)).collect::<Vec<_>>(),
            [Timer::T4, Timer::T5]
        );
        assert_eq!(t.next_timeout(), Some(s(3)));
        // The clock going back finds nothing more than it should.
        assert_eq!(t.expired(s(10)).collect::<Vec<_>>(), [Timer::T4]);
    }
}
