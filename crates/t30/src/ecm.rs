//! ECM on the receiving side (T.4 Annex A, T.30 §A.4): the frames of a block collected by frame number,
//! the block's frame count, and what the data of a page tells once a block is complete.
//!
//! Two rules keep a confirmed page identical to the page sent:
//! * A block is complete only when every frame up to its frame count is in. The count a PPS carries is
//!   not reliable on its own: after a PPR, some senders (SpanDSP among them) count only the frames of the
//!   latest burst, so a PPS announcing "1 frame" may follow a block of 149. The count used is the largest
//!   any PPS of the block gave, and never less than the highest frame number received plus one.
//! * A block is confirmed (MCF) only when the page so far decodes without a fault: no coding error, no
//!   bad line but a line cut by the block boundary, and, at the end of the page, RTC / EOFB. T.38 carries
//!   no FCS, so a frame's integrity rests on noticing lost IFPs; decoding is the second check.

use std::hash::{Hash, Hasher};

use t4::{DecodeStats, PageEnd};

/// Whole-block retransmissions asked for one block whose data did not decode, before giving up.
pub(crate) const MAX_BLOCK_REQUESTS: u32 = 2;

/// The frames of the block being received.
#[derive(Debug)]
pub(crate) struct BlockRx {
    /// T.4 data of each frame by number (bit order restored).
    frames: Vec<Option<Vec<u8>>>,
    /// A frame arrived since the last PPS.
    pub(crate) new_frames: bool,
    /// The largest frame count a PPS of this block announced.
    announced: usize,
    /// The highest frame number received, plus one.
    highest: usize,
    /// The last (page, block) confirmed with MCF.
    pub(crate) confirmed: Option<(u8, u8)>,
    /// Whole-block retransmissions asked for this block, and a digest of the data that failed last.
    pub(crate) requests: u32,
    pub(crate) failed_digest: Option<u64>,
}

impl Default for BlockRx {
    fn default() -> Self {
        Self {
            frames: vec![None; 256],
            new_frames: false,
            announced: 0,
            highest: 0,
            confirmed: None,
            requests: 0,
            failed_digest: None,
        }
    }
}

impl BlockRx {
    /// Keeps a frame (FCD) that arrived intact: `n` is its number, `wire` its T.4 data in HDLC octet
    /// order. A frame already held is not replaced.
    pub(crate) fn store(&mut self, n: u8, wire: &[u8]) {
        let slot = &mut self.frames[usize::from(n)];
        if slot.is_none() {
            *slot = Some(wire.iter().map(|b| b.reverse_bits()).collect());
            self.new_frames = true;
        }
        self.highest = self.highest.max(usize::from(n) + 1);
    }

    /// Takes the frame count of a PPS; returns the block's frame count.
    pub(crate) fn announce(&mut self, count: usize) -> usize {
        self.announced = self.announced.max(count);
        self.count()
    }

    /// The block's frame count so far.
    pub(crate) fn count(&self) -> usize {
        self.announced.max(self.highest)
    }

    /// Frame numbers of the block not yet in.
    pub(crate) fn missing(&self) -> Vec<usize> {
        (0..self.count())
            .filter(|&i| self.frames[i].is_none())
            .collect()
    }

    /// Appends the block's data, frame by frame, to `out`.
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        for f in self.frames.iter().take(self.count()).flatten() {
            out.extend_from_slice(f);
        }
    }

    /// A digest of the block's data, to tell a retransmission that repeats the same data.
    pub(crate) fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.frames
            .iter()
            .take(self.count())
            .for_each(|f| f.hash(&mut h));
        h.finish()
    }

    /// Drops the frames (the block was taken, or is asked for again whole); the count stays known.
    pub(crate) fn drop_frames(&mut self) {
        self.frames.iter_mut().for_each(|f| *f = None);
        self.new_frames = false;
    }

    /// Starts the next block.
    pub(crate) fn next_block(&mut self) {
        self.drop_frames();
        self.announced = 0;
        self.highest = 0;
        self.requests = 0;
        self.failed_digest = None;
    }

    /// Whatever arrived of the block, in frame order, gaps left out (the sender gave up on them: EOR).
    pub(crate) fn take_partial(&mut self, out: &mut Vec<u8>) {
        for f in self.frames.iter_mut().flatten() {
            out.append(f);
        }
        self.next_block();
    }
}

/// Why the data of a page (so far) cannot be confirmed; `None` when it can. `last` says whether the
/// page ends with this block.
pub(crate) fn fault(stats: Option<&DecodeStats>, last: bool, max_lines: u32) -> Option<String> {
    let Some(s) = stats else {
        return Some("nothing in the data decodes".into());
    };
    let line = |r: u32| r + 1;
    match s.end {
        PageEnd::Error => {
            let at = s.first_bad.unwrap_or(s.height);
            return Some(format!(
                "a T.6 coding error at line {}: the rest of the page is lost",
                line(at)
            ));
        }
        PageEnd::Rows => return Some(format!("more than {max_lines} lines")),
        PageEnd::DataEnd if last => {
            return Some(format!(
                "the data ends at line {} without RTC / EOFB",
                s.height
            ));
        }
        PageEnd::DataEnd | PageEnd::Terminator => {}
    }
    // A block boundary may cut the last line of a page that goes on: that line is not a fault.
    let cut = !last && s.end == PageEnd::DataEnd && s.first_bad == Some(s.height.saturating_sub(1));
    match s.first_bad {
        Some(r) if !cut => Some(format!(
            "{} line(s) do not decode, the first at line {}",
            s.bad_lines,
            line(r)
        )),
        _ => None,
    }
}

/// Lines a page lost at its end: when its data stopped early or broke, the lines between where it
/// stopped and the length the DCS announced.
pub(crate) fn lines_lost(s: &DecodeStats, nominal: u32) -> u32 {
    if s.complete() {
        0
    } else {
        nominal.saturating_sub(s.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(height: u32, end: PageEnd, first_bad: Option<u32>) -> DecodeStats {
        DecodeStats {
            height,
            bad_lines: u32::from(first_bad.is_some()),
            max_consecutive_bad: u32::from(first_bad.is_some()),
            first_bad,
            end,
        }
    }

    #[test]
    fn a_pps_counting_only_the_resent_frames_does_not_shrink_the_block() {
        let mut b = BlockRx::default();
        for n in 0..149u8 {
            if n != 20 {
                b.store(n, &[n; 4]);
            }
        }
        assert_eq!(b.announce(149), 149);
        assert_eq!(b.missing(), vec![20]);
        b.store(20, &[20; 4]);
        // SpanDSP's PPS after the retransmission of frame 20 alone says "1 frame".
        assert_eq!(b.announce(1), 149);
        assert!(b.missing().is_empty());
        let mut out = Vec::new();
        b.append_to(&mut out);
        assert_eq!(out.len(), 149 * 4);
        assert_eq!(out[20 * 4], 20u8.reverse_bits());
        // A lost first PPS: the frames received say how long the block is at least.
        let mut c = BlockRx::default();
        c.store(0, &[1]);
        c.store(7, &[1]);
        assert_eq!(c.announce(1), 8);
        assert_eq!(c.missing(), (1..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_block_forgets_the_frames_and_the_count_of_the_last() {
        let mut b = BlockRx::default();
        b.store(200, &[1]);
        b.announce(256);
        b.next_block();
        b.store(0, &[2]);
        assert_eq!(b.announce(1), 1);
        assert!(b.missing().is_empty());
    }

    #[test]
    fn only_a_clean_page_or_a_cleanly_cut_prefix_passes() {
        let max = 16_384;
        assert_eq!(
            fault(Some(&stats(2292, PageEnd::Terminator, None)), true, max),
            None
        );
        // A truncated page: decoded lines, no bad one, but no EOFB.
        assert!(
            fault(Some(&stats(265, PageEnd::DataEnd, None)), true, max)
                .is_some_and(|w| w.contains("without RTC / EOFB"))
        );
        // The same data as a block that is not the page's last: fine, more follows.
        assert_eq!(
            fault(Some(&stats(265, PageEnd::DataEnd, None)), false, max),
            None
        );
        // The block boundary cut the last line.
        assert_eq!(
            fault(Some(&stats(265, PageEnd::DataEnd, Some(264))), false, max),
            None
        );
        // A bad line before the cut, or a T.6 error, is a fault either way.
        for last in [false, true] {
            assert!(fault(Some(&stats(265, PageEnd::DataEnd, Some(100))), last, max).is_some());
            assert!(
                fault(Some(&stats(104, PageEnd::Error, Some(103))), last, max)
                    .is_some_and(|w| w.contains("line 104"))
            );
        }
        assert!(fault(None, true, max).is_some());
        assert_eq!(lines_lost(&stats(265, PageEnd::DataEnd, None), 2286), 2021);
        assert_eq!(lines_lost(&stats(2292, PageEnd::Terminator, None), 2286), 0);
    }
}
