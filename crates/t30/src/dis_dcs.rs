//! DIS / DTC capabilities and the DCS that answers them (T.30 Table 2, §5.3.6.2.1 to .3).
//!
//! Bits are numbered as T.30 numbers them, from 1; bit n is bit `(n - 1) % 8` of FIF octet `(n - 1) / 8`
//! (HDLC order, see [`crate::fcf`]). Every eighth bit from 24 on is the extend bit saying another octet
//! follows.

use std::fmt;

/// The bit numbers this engine reads or writes.
pub mod bit {
    pub const READY_TO_TRANSMIT: u32 = 9;
    pub const RECEIVER: u32 = 10;
    pub const MODEM_1: u32 = 11;
    pub const MODEM_2: u32 = 12;
    pub const MODEM_3: u32 = 13;
    pub const MODEM_4: u32 = 14;
    pub const FINE: u32 = 15;
    pub const MR: u32 = 16;
    pub const WIDTH_1: u32 = 17;
    pub const WIDTH_2: u32 = 18;
    pub const LENGTH_B4: u32 = 19;
    pub const LENGTH_UNLIMITED: u32 = 20;
    pub const MIN_SCAN_1: u32 = 21;
    pub const MIN_SCAN_2: u32 = 22;
    pub const MIN_SCAN_3: u32 = 23;
    pub const ECM: u32 = 27;
    pub const ECM_64: u32 = 28;
    pub const MMR: u32 = 31;
    pub const SUPERFINE: u32 = 41;
    pub const MIN_SCAN_HALVES: u32 = 46;
    /// DIS: subaddressing capability; DCS: a SUB frame is sent.
    pub const SUBADDRESS: u32 = 49;
    /// DIS: password capability; DCS: a SID frame (sender identification / password) is sent.
    pub const PASSWORD: u32 = 50;
}

/// Lines of an A4 (297 mm) or B4 (364 mm) page at a resolution's 3.85, 7.7 or 15.4 lines per mm (T.4 §2.2).
pub fn page_lines(res: Resolution, b4: bool) -> u32 {
    let mm = if b4 { 364.0 } else { 297.0 };
    let per_mm = match res {
        Resolution::Standard => 3.85,
        Resolution::Fine => 7.7,
        Resolution::Superfine => 15.4,
    };
    (mm * per_mm) as u32
}

/// A facsimile information field with T.30's bit numbering.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Fif(pub Vec<u8>);

impl fmt::Debug for Fif {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fif(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Fif {
    /// Whether bit `n` (from 1) is set; bits past the field are 0.
    pub fn get(&self, n: u32) -> bool {
        let i = ((n - 1) / 8) as usize;
        self.0.get(i).is_some_and(|o| o & (1 << ((n - 1) % 8)) != 0)
    }

    /// Sets bit `n`, growing the field and setting the extend bits of the octets before it.
    pub fn set(&mut self, n: u32) {
        let i = ((n - 1) / 8) as usize;
        while self.0.len() <= i {
            if self.0.len() >= 3 {
                // The last octet so far gets its extend bit (bit 24, 32, ...).
                let last = self.0.len() - 1;
                self.0[last] |= 0x80;
            }
            self.0.push(0);
        }
        self.0[i] |= 1 << ((n - 1) % 8);
    }
}

/// A modulation and bit rate for image data (T.30 Table 2 bits 11 to 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modem {
    /// V.27 ter 2400 bit/s.
    V27ter2400,
    /// V.27 ter 4800 bit/s.
    V27ter4800,
    /// V.29 7200 bit/s.
    V29_7200,
    /// V.29 9600 bit/s.
    V29_9600,
    /// V.17 7200 bit/s.
    V17_7200,
    /// V.17 9600 bit/s.
    V17_9600,
    /// V.17 12000 bit/s.
    V17_12000,
    /// V.17 14400 bit/s.
    V17_14400,
}

impl Modem {
    /// The fall-back order T.30 uses after FTT (fastest first).
    pub const FALLBACK: [Modem; 8] = [
        Modem::V17_14400,
        Modem::V17_12000,
        Modem::V17_9600,
        Modem::V29_9600,
        Modem::V17_7200,
        Modem::V29_7200,
        Modem::V27ter4800,
        Modem::V27ter2400,
    ];

    /// Bits per second.
    pub fn bit_rate(self) -> u32 {
        match self {
            Modem::V27ter2400 => 2400,
            Modem::V27ter4800 => 4800,
            Modem::V29_7200 | Modem::V17_7200 => 7200,
            Modem::V29_9600 | Modem::V17_9600 => 9600,
            Modem::V17_12000 => 12000,
            Modem::V17_14400 => 14400,
        }
    }

    /// The modem family.
    pub fn family(self) -> Family {
        match self {
            Modem::V27ter2400 | Modem::V27ter4800 => Family::V27ter,
            Modem::V29_7200 | Modem::V29_9600 => Family::V29,
            _ => Family::V17,
        }
    }

    /// DCS bits 11 to 14 as (11, 12, 13, 14).
    pub(crate) fn dcs_bits(self) -> [bool; 4] {
        match self {
            Modem::V27ter2400 => [false, false, false, false],
            Modem::V27ter4800 => [false, true, false, false],
            Modem::V29_9600 => [true, false, false, false],
            Modem::V29_7200 => [true, true, false, false],
            Modem::V17_14400 => [false, false, false, true],
            Modem::V17_12000 => [false, true, false, true],
            Modem::V17_9600 => [true, false, false, true],
            Modem::V17_7200 => [true, true, false, true],
        }
    }

    pub(crate) fn from_dcs_bits(b: [bool; 4]) -> Option<Modem> {
        Modem::FALLBACK
            .into_iter()
            .chain([Modem::V27ter2400])
            .find(|m| m.dcs_bits() == b)
    }

    /// The modem that bits 11 to 14 of a DCS (or of the FIF of CTC) name.
    pub(crate) fn from_dcs_fif(f: &Fif) -> Option<Modem> {
        Modem::from_dcs_bits([
            f.get(bit::MODEM_1),
            f.get(bit::MODEM_2),
            f.get(bit::MODEM_3),
            f.get(bit::MODEM_4),
        ])
    }

    /// Sets bits 11 to 14 of a DCS (or of the FIF of CTC) to name this modem.
    fn set_dcs_bits(self, f: &mut Fif) {
        for (i, on) in self.dcs_bits().iter().enumerate() {
            if *on {
                f.set(bit::MODEM_1 + i as u32);
            }
        }
    }

    /// The FIF of CTC: DCS octets 1 and 2 with the modem to continue at (T.30 §5.3.6.2.12).
    pub(crate) fn ctc_fif(self) -> Fif {
        let mut f = Fif(vec![0, 0]);
        self.set_dcs_bits(&mut f);
        f
    }
}

/// The modem families of Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V27ter,
    V29,
    V17,
}

/// Vertical resolution of R8 (8 pels/mm, 1728 pels on 215 mm) pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// 3.85 lines/mm (98 dpi).
    Standard,
    /// 7.7 lines/mm (196 dpi).
    Fine,
    /// 15.4 lines/mm (391 dpi).
    Superfine,
}

impl Resolution {
    /// Lines per inch, as TIFF records it.
    pub fn lines_per_inch(self) -> f64 {
        match self {
            Resolution::Standard => 98.0,
            Resolution::Fine => 196.0,
            Resolution::Superfine => 391.0,
        }
    }

    /// The resolution for a TIFF y resolution in dpi, if it is one of the three.
    pub fn from_dpi(dpi: f64) -> Option<Self> {
        [
            Resolution::Standard,
            Resolution::Fine,
            Resolution::Superfine,
        ]
        .into_iter()
        .find(|r| (r.lines_per_inch() - dpi).abs() < dpi * 0.05)
    }
}

/// Image coding (T.4 / T.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    Mh,
    Mr,
    Mmr,
}

impl Compression {
    /// The t4 crate's coding for this compression at a resolution (K = 2 standard, 4 finer).
    pub fn coding(self, res: Resolution) -> t4::Coding {
        match self {
            Compression::Mh => t4::Coding::Mh,
            Compression::Mr => t4::Coding::Mr {
                k: if res == Resolution::Standard { 2 } else { 4 },
            },
            Compression::Mmr => t4::Coding::Mmr,
        }
    }

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Mh => "mh",
            Compression::Mr => "mr",
            Compression::Mmr => "mmr",
        }
    }
}

/// What a terminal can do, as its DIS says (or as we will say it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Can receive (bit 10).
    pub receive: bool,
    /// Has a document to send when polled (bit 9).
    pub transmit: bool,
    pub v27ter: bool,
    pub v29: bool,
    pub v17: bool,
    pub fine: bool,
    pub superfine: bool,
    pub mr: bool,
    pub mmr: bool,
    pub ecm: bool,
    /// Widest line: 1728, 2048 or 2432 pels.
    pub max_width: u32,
    /// Unlimited page length (else A4, or B4 when `b4`).
    pub unlimited_length: bool,
    pub b4_length: bool,
    /// Minimum scan line time at standard resolution in ms (T.30 Table 2 bits 21 to 23), and whether the
    /// finer resolutions may halve it.
    pub min_scan_ms: u32,
    pub min_scan_halves: bool,
    /// Takes SUB (bit 49) and SID / PWD (bit 50).
    pub subaddressing: bool,
    pub password: bool,
}

impl Capabilities {
    /// Decodes a DIS or DTC FIF. Fields too short to hold bits read as 0.
    pub fn from_dis(fif: &Fif) -> Self {
        let m = [
            fif.get(bit::MODEM_1),
            fif.get(bit::MODEM_2),
            fif.get(bit::MODEM_3),
            fif.get(bit::MODEM_4),
        ];
        // Table 2: 0000 V.27 ter fall-back only, 0100 V.27 ter, 1000 V.29, 1100 V.27 ter and V.29,
        // 1101 V.27 ter, V.29 and V.17; other values are reserved (read as V.27 ter).
        let (v27ter, v29, v17) = match m {
            [true, false, false, false] => (false, true, false),
            [true, true, false, false] => (true, true, false),
            [true, true, false, true] => (true, true, true),
            _ => (true, false, false),
        };
        let width = match (fif.get(bit::WIDTH_1), fif.get(bit::WIDTH_2)) {
            (false, false) => 1728,
            (true, false) => 2048,
            _ => 2432,
        };
        let scan = u32::from(fif.get(bit::MIN_SCAN_1))
            | u32::from(fif.get(bit::MIN_SCAN_2)) << 1
            | u32::from(fif.get(bit::MIN_SCAN_3)) << 2;
        // (standard ms, finer halves) per code value b21 + 2 b22 + 4 b23.
        let (ms, halves) = match scan {
            0 => (20, false),
            1 => (5, false),
            2 => (10, false),
            3 => (20, true),
            4 => (40, false),
            5 => (40, true),
            6 => (10, true),
            _ => (0, false),
        };
        Self {
            receive: fif.get(bit::RECEIVER),
            transmit: fif.get(bit::READY_TO_TRANSMIT),
            v27ter,
            v29,
            v17,
            fine: fif.get(bit::FINE),
            superfine: fif.get(bit::SUPERFINE),
            mr: fif.get(bit::MR),
            mmr: fif.get(bit::MMR) && fif.get(bit::ECM),
            ecm: fif.get(bit::ECM),
            max_width: width,
            unlimited_length: fif.get(bit::LENGTH_UNLIMITED),
            b4_length: fif.get(bit::LENGTH_B4),
            min_scan_ms: ms,
            min_scan_halves: halves || fif.get(bit::MIN_SCAN_HALVES),
            subaddressing: fif.get(bit::SUBADDRESS),
            password: fif.get(bit::PASSWORD),
        }
    }

    /// Encodes as a DIS FIF (a receiver with no scan line minimum).
    pub fn to_dis(&self) -> Fif {
        let mut f = Fif(vec![0, 0, 0]);
        if self.transmit {
            f.set(bit::READY_TO_TRANSMIT);
        }
        if self.receive {
            f.set(bit::RECEIVER);
        }
        match (self.v27ter, self.v29, self.v17) {
            (_, _, true) => {
                f.set(bit::MODEM_1);
                f.set(bit::MODEM_2);
                f.set(bit::MODEM_4);
            }
            (true, true, false) => {
                f.set(bit::MODEM_1);
                f.set(bit::MODEM_2);
            }
            (false, true, false) => f.set(bit::MODEM_1),
            _ => f.set(bit::MODEM_2),
        }
        if self.fine {
            f.set(bit::FINE);
        }
        if self.mr {
            f.set(bit::MR);
        }
        match self.max_width {
            w if w >= 2432 => f.set(bit::WIDTH_2),
            w if w >= 2048 => f.set(bit::WIDTH_1),
            _ => {}
        }
        if self.unlimited_length {
            f.set(bit::LENGTH_UNLIMITED);
        }
        if self.b4_length {
            f.set(bit::LENGTH_B4);
        }
        // Minimum scan line time 0 ms: bits 21, 22 and 23 all set.
        if self.min_scan_ms == 0 {
            f.set(bit::MIN_SCAN_1);
            f.set(bit::MIN_SCAN_2);
            f.set(bit::MIN_SCAN_3);
        }
        if self.ecm {
            f.set(bit::ECM);
            if self.mmr {
                f.set(bit::MMR);
            }
        }
        if self.superfine {
            f.set(bit::SUPERFINE);
        }
        if self.subaddressing {
            f.set(bit::SUBADDRESS);
        }
        if self.password {
            f.set(bit::PASSWORD);
        }
        f
    }

    /// The modems of `self` that `far` also has, fastest first, no faster than `max_rate`.
    pub fn common_modems(&self, far: &Capabilities, max_rate: u32) -> Vec<Modem> {
        Modem::FALLBACK
            .into_iter()
            .filter(|m| m.bit_rate() <= max_rate)
            .filter(|m| match m.family() {
                Family::V17 => self.v17 && far.v17,
                Family::V29 => self.v29 && far.v29,
                // Every fax terminal has V.27 ter at least as its fall-back.
                Family::V27ter => true,
            })
            .collect()
    }
}

/// What the sender chose for a page and says in DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dcs {
    pub modem: Modem,
    pub resolution: Resolution,
    pub compression: Compression,
    pub ecm: bool,
    /// ECM frame size: 256 or 64 octets.
    pub ecm_frame: usize,
    /// Line width in pels: 1728, 2048 or 2432.
    pub width: u32,
    /// Minimum scan line time in ms that applies to this page.
    pub min_scan_ms: u32,
    pub unlimited_length: bool,
    pub b4_length: bool,
    /// A SUB frame comes with this DCS (bit 49), and a SID frame (bit 50).
    pub sub: bool,
    pub sid: bool,
}

impl Dcs {
    /// Lines of a page of the length this DCS announces (A4 297 mm or B4 364 mm at 3.85, 7.7 or 15.4
    /// lines per mm, T.4 §2.2); unlimited length counts as A4, the shortest a page normally is. A receiver
    /// uses it to count the lines a page lost when its data stopped early.
    pub fn nominal_lines(&self) -> u32 {
        page_lines(self.resolution, self.b4_length)
    }

    /// Encodes as a DCS FIF.
    pub fn to_fif(&self) -> Fif {
        let mut f = Fif(vec![0, 0, 0]);
        f.set(bit::RECEIVER);
        self.modem.set_dcs_bits(&mut f);
        match self.resolution {
            Resolution::Standard => {}
            Resolution::Fine => f.set(bit::FINE),
            Resolution::Superfine => f.set(bit::SUPERFINE),
        }
        match self.compression {
            Compression::Mh => {}
            Compression::Mr => f.set(bit::MR),
            Compression::Mmr => f.set(bit::MMR),
        }
        match self.width {
            2432 => f.set(bit::WIDTH_2),
            2048 => f.set(bit::WIDTH_1),
            _ => {}
        }
        if self.unlimited_length {
            f.set(bit::LENGTH_UNLIMITED);
        } else if self.b4_length {
            f.set(bit::LENGTH_B4);
        }
        // DCS minimum scan line codes: 000 20 ms, 100 (bit 21) 5 ms, 010 (bit 22) 10 ms, 001 (bit 23)
        // 40 ms, 111 0 ms.
        match self.min_scan_ms {
            0 => {
                f.set(bit::MIN_SCAN_1);
                f.set(bit::MIN_SCAN_2);
                f.set(bit::MIN_SCAN_3);
            }
            5 => f.set(bit::MIN_SCAN_1),
            10 => f.set(bit::MIN_SCAN_2),
            40 => f.set(bit::MIN_SCAN_3),
            _ => {}
        }
        if self.ecm {
            f.set(bit::ECM);
            if self.ecm_frame == 64 {
                f.set(bit::ECM_64);
            }
        }
        if self.sub {
            f.set(bit::SUBADDRESS);
        }
        if self.sid {
            f.set(bit::PASSWORD);
        }
        f
    }

    /// Decodes a DCS FIF; `None` when bits 11 to 14 name no modem.
    pub fn from_fif(f: &Fif) -> Option<Self> {
        let modem = Modem::from_dcs_fif(f)?;
        let resolution = if f.get(bit::SUPERFINE) {
            Resolution::Superfine
        } else if f.get(bit::FINE) {
            Resolution::Fine
        } else {
            Resolution::Standard
        };
        let compression = if f.get(bit::MMR) {
            Compression::Mmr
        } else if f.get(bit::MR) {
            Compression::Mr
        } else {
            Compression::Mh
        };
        let width = match (f.get(bit::WIDTH_1), f.get(bit::WIDTH_2)) {
            (false, false) => 1728,
            (true, false) => 2048,
            _ => 2432,
        };
        let scan = (
            f.get(bit::MIN_SCAN_1),
            f.get(bit::MIN_SCAN_2),
            f.get(bit::MIN_SCAN_3),
        );
        let min_scan_ms = match scan {
            (true, true, true) => 0,
            (true, false, false) => 5,
            (false, true, false) => 10,
            (false, false, true) => 40,
            _ => 20,
        };
        let ecm = f.get(bit::ECM);
        Some(Self {
            modem,
            resolution,
            compression,
            ecm,
            ecm_frame: if f.get(bit::ECM_64) { 64 } else { 256 },
            width,
            min_scan_ms,
            unlimited_length: f.get(bit::LENGTH_UNLIMITED),
            b4_length: f.get(bit::LENGTH_B4),
            sub: f.get(bit::SUBADDRESS),
            sid: f.get(bit::PASSWORD),
        })
    }

    /// Bits each coded line must at least take in non-ECM transmission.
    pub fn min_line_bits(&self) -> u32 {
        if self.ecm {
            0
        } else {
            self.modem.bit_rate() * self.min_scan_ms / 1000
        }
    }
}

/// The minimum scan line time for a page at `res`, from the far end's DIS (T.30 Table 2 note).
pub fn min_scan_for(far: &Capabilities, res: Resolution) -> u32 {
    match res {
        Resolution::Standard => far.min_scan_ms,
        _ if far.min_scan_halves => far.min_scan_ms / 2,
        _ => far.min_scan_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Capabilities {
        Capabilities {
            receive: true,
            transmit: false,
            v27ter: true,
            v29: true,
            v17: true,
            fine: true,
            superfine: true,
            mr: true,
            mmr: true,
            ecm: true,
            max_width: 1728,
            unlimited_length: true,
            b4_length: true,
            min_scan_ms: 0,
            min_scan_halves: false,
            subaddressing: true,
            password: true,
        }
    }

    #[test]
    fn dis_round_trips_and_extends_to_bit_41() {
        let c = ours();
        let f = c.to_dis();
        // Extend bits 24, 32, 40 and 48 set (bits 49 and 50 are in the seventh octet), 56 clear.
        assert_eq!(f.0.len(), 7);
        assert!(f.get(24) && f.get(32) && f.get(40) && f.get(48) && !f.get(56));
        assert_eq!(Capabilities::from_dis(&f), c);
    }

    #[test]
    fn dcs_round_trips_for_every_modem() {
        for modem in Modem::FALLBACK {
            for compression in [Compression::Mh, Compression::Mr, Compression::Mmr] {
                let d = Dcs {
                    modem,
                    resolution: Resolution::Fine,
                    compression,
                    ecm: compression == Compression::Mmr,
                    ecm_frame: 256,
                    width: 1728,
                    min_scan_ms: 10,
                    unlimited_length: true,
                    b4_length: false,
                    sub: compression == Compression::Mr,
                    sid: compression == Compression::Mmr,
                };
                assert_eq!(Dcs::from_fif(&d.to_fif()), Some(d));
            }
        }
    }

    #[test]
    fn v17_dis_bits_are_11_12_14() {
        let f = ours().to_dis();
        assert!(f.get(11) && f.get(12) && !f.get(13) && f.get(14));
        // The V.17 14400 DCS code is bit 14 alone.
        let d = Dcs {
            modem: Modem::V17_14400,
            resolution: Resolution::Standard,
            compression: Compression::Mh,
            ecm: false,
            ecm_frame: 256,
            width: 1728,
            min_scan_ms: 20,
            unlimited_length: false,
            b4_length: false,
            sub: false,
            sid: false,
        }
        .to_fif();
        assert!(!d.get(11) && !d.get(12) && !d.get(13) && d.get(14));
    }

    #[test]
    fn short_or_garbage_dis_never_panics() {
        for len in 0..8 {
            let c = Capabilities::from_dis(&Fif(vec![0xff; len]));
            assert!(c.max_width >= 1728);
        }
    }
}
