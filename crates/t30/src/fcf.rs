//! T.30 HDLC frames (T.30 §5.3): address, control, facsimile control field (FCF, Table 5) and the
//! information field (FIF).
//!
//! Octets are held as HDLC sends them: bit 0 of each octet is the first on the line. T.30 writes FCFs in
//! line order with bit 1 leftmost (DCS is `X100 0001`), so its octet here is `0x82` with the X bit as bit 0.
//! T.38 carries HDLC octets with the first bit as the most significant, so every octet is bit-reversed at
//! the T.38 boundary ([`reverse_octets`]); nothing else in this crate sees the T.38 order.

/// The address field of every T.30 frame (§5.3.4).
pub const ADDRESS: u8 = 0xFF;
/// Control field of a frame that is not the last of a burst.
pub const CONTROL_NON_FINAL: u8 = 0x03;
/// Control field of the last frame of a burst (§5.3.5).
pub const CONTROL_FINAL: u8 = 0x13;

/// The X bit of an FCF (§5.3.6.1): 1 in frames sent by the station that received a valid DIS.
pub const X_BIT: u8 = 0x01;

macro_rules! fcfs {
    ($( $(#[$m:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        /// A facsimile control field (Table 5), by its T.30 short name.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Fcf {
            $( $(#[$m])* $name, )*
        }

        impl Fcf {
            /// Every FCF of the table.
            pub const ALL: &[Fcf] = &[$( Fcf::$name, )*];

            /// The octet with the X bit clear, in HDLC order (see the module documentation).
            pub const fn octet(self) -> u8 {
                match self {
                    $( Fcf::$name => $value, )*
                }
            }

            /// The T.30 short name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Fcf::$name => $text, )*
                }
            }
        }
    };
}

fcfs! {
    /// Digital identification signal `0000 0001`.
    DIS = 0x80, "DIS";
    /// Called subscriber identification `0000 0010`.
    CSI = 0x40, "CSI";
    /// Non-standard facilities `0000 0100`.
    NSF = 0x20, "NSF";
    /// Digital transmit command `1000 0001`.
    DTC = 0x81, "DTC";
    /// Digital command signal `X100 0001`.
    DCS = 0x82, "DCS";
    /// Transmitting subscriber identification `X100 0010`.
    TSI = 0x42, "TSI";
    /// Non-standard facilities set-up `X100 0100`.
    NSS = 0x22, "NSS";
    /// Sub-address `X100 0011`.
    SUB = 0xC2, "SUB";
    /// Sender identification `X100 0101`.
    SID = 0xA2, "SID";
    /// Continue to correct `X100 1000`.
    CTC = 0x12, "CTC";
    /// Password (with DTC) `1000 0011`.
    PWD = 0xC1, "PWD";
    /// Confirmation to receive `X010 0001`.
    CFR = 0x84, "CFR";
    /// Failure to train `X010 0010`.
    FTT = 0x44, "FTT";
    /// Response to continue to correct `X010 0011`.
    CTR = 0xC4, "CTR";
    /// End of message `X111 0001`.
    EOM = 0x8E, "EOM";
    /// Multipage signal `X111 0010`.
    MPS = 0x4E, "MPS";
    /// End of procedure `X111 0100`.
    EOP = 0x2E, "EOP";
    /// Procedure interrupt, end of message `X111 1001`.
    PRI_EOM = 0x9E, "PRI-EOM";
    /// Procedure interrupt, multipage `X111 1010`.
    PRI_MPS = 0x5E, "PRI-MPS";
    /// Procedure interrupt, end of procedure `X111 1100`.
    PRI_EOP = 0x3E, "PRI-EOP";
    /// Partial page signal (ECM) `X111 1101`.
    PPS = 0xBE, "PPS";
    /// End of retransmission (ECM) `X111 0011`.
    EOR = 0xCE, "EOR";
    /// Receiver ready (ECM) `X111 0110`.
    RR = 0x6E, "RR";
    /// Message confirmation `X011 0001`.
    MCF = 0x8C, "MCF";
    /// Retrain positive `X011 0011`.
    RTP = 0xCC, "RTP";
    /// Retrain negative `X011 0010`.
    RTN = 0x4C, "RTN";
    /// Procedure interrupt positive `X011 0101`.
    PIP = 0xAC, "PIP";
    /// Procedure interrupt negative `X011 0100`.
    PIN = 0x2C, "PIN";
    /// Partial page request (ECM) `X011 1101`.
    PPR = 0xBC, "PPR";
    /// Receive not ready (ECM) `X011 0111`.
    RNR = 0xEC, "RNR";
    /// Response to end of retransmission (ECM) `X011 1000`.
    ERR = 0x1C, "ERR";
    /// Disconnect `X101 1111`.
    DCN = 0xFA, "DCN";
    /// Command repeat `X101 1000`.
    CRP = 0x1A, "CRP";
    /// Field not valid `X101 0011`.
    FNV = 0xCA, "FNV";
    /// Facsimile coded data, the ECM image frame of T.4 Annex A `0110 0000`.
    FCD = 0x06, "FCD";
    /// Return to control for partial page (T.4 Annex A) `0110 0001`.
    RCP = 0x86, "RCP";
}

impl Fcf {
    /// The FCF of a received octet, read as a receiver must (§5.3.6.1): DIS and DTC exactly (they
    /// differ only in the X bit's place), every other without its X bit. `None` for an octet that is no
    /// FCF of Table 5.
    pub fn parse(octet: u8) -> Option<Fcf> {
        match octet {
            0x80 => Some(Fcf::DIS),
            0x81 => Some(Fcf::DTC),
            _ => Fcf::ALL
                .iter()
                .copied()
                .find(|f| !f.has_no_x_bit() && f.octet() & !X_BIT == octet & !X_BIT),
        }
    }

    /// DIS and DTC carry no X bit: the bit in its place tells them apart.
    fn has_no_x_bit(self) -> bool {
        matches!(self, Fcf::DIS | Fcf::DTC)
    }

    /// The octet to send, with the X bit set when `x` (never for DIS and DTC, see [`Fcf::parse`]).
    pub fn with_x(self, x: bool) -> u8 {
        if x && !self.has_no_x_bit() {
            self.octet() | X_BIT
        } else {
            self.octet()
        }
    }
}

/// The T.30 short name of an FCF octet, or "unknown" (for logs).
pub fn name(octet: u8) -> &'static str {
    Fcf::parse(octet).map_or("unknown", Fcf::name)
}

/// The "nothing more" second FCF of a PPS that ends a partial page inside a page (T.4 Annex A).
pub const PPS_NULL: u8 = 0x00;

/// Reverses the bit order of every octet: between HDLC octets (first bit in bit 0) and T.38's order
/// (first bit in bit 7).
pub fn reverse_octets(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b.reverse_bits()).collect()
}

/// A frame received or to send: address, control, FCF and FIF, without the FCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(pub Vec<u8>);

impl Frame {
    /// A frame with the given FCF, its X bit clear, and FIF.
    pub fn new(fcf: Fcf, fif: &[u8], last: bool) -> Self {
        Self::with_octet(fcf.octet(), fif, last)
    }

    /// A frame with the given FCF octet (X bit included) and FIF.
    pub fn with_octet(fcf: u8, fif: &[u8], last: bool) -> Self {
        let mut v = Vec::with_capacity(3 + fif.len());
        v.push(ADDRESS);
        v.push(if last {
            CONTROL_FINAL
        } else {
            CONTROL_NON_FINAL
        });
        v.push(fcf);
        v.extend_from_slice(fif);
        Self(v)
    }

    /// Whether the frame has the T.30 shape (address, a known control field and an FCF).
    pub fn is_valid(&self) -> bool {
        self.0.len() >= 3
            && self.0[0] == ADDRESS
            && (self.0[1] == CONTROL_FINAL || self.0[1] == CONTROL_NON_FINAL)
    }

    /// The last frame of its burst.
    pub fn is_final(&self) -> bool {
        self.0.get(1) == Some(&CONTROL_FINAL)
    }

    /// The FCF octet as received, X bit included, or 0 for a frame too short to have one.
    pub fn fcf_octet(&self) -> u8 {
        self.0.get(2).copied().unwrap_or(0)
    }

    /// The FCF, `None` for an octet that is none of Table 5 (or a frame too short to have one).
    pub fn fcf(&self) -> Option<Fcf> {
        Fcf::parse(self.fcf_octet())
    }

    /// The information field.
    pub fn fif(&self) -> &[u8] {
        self.0.get(3..).unwrap_or(&[])
    }
}

/// The FIF of CSI, TSI, CIG (§5.3.6.2.4 to .6): 20 characters, last character first, space padded.
pub fn encode_ident(ident: &str) -> [u8; 20] {
    let mut out = [b' '; 20];
    let chars: Vec<u8> = ident
        .bytes()
        .filter(|b| (0x20..0x7f).contains(b))
        .take(20)
        .collect();
    for (i, c) in chars.iter().enumerate() {
        out[19 - i] = *c;
    }
    out
}

/// Decodes an identity FIF; tolerates short fields and drops what is not printable.
pub fn decode_ident(fif: &[u8]) -> String {
    let s: String = fif
        .iter()
        .rev()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_the_x_bit_but_not_for_dis_and_dtc() {
        assert_eq!(name(Fcf::DCS.octet() | X_BIT), "DCS");
        assert_eq!(name(Fcf::DIS.octet()), "DIS");
        assert_eq!(name(Fcf::DTC.octet()), "DTC");
        assert_eq!(name(Fcf::MCF.octet()), "MCF");
        assert_eq!(Fcf::parse(Fcf::MPS.with_x(true)), Some(Fcf::MPS));
        assert_ne!(Fcf::parse(Fcf::DIS.octet()), Fcf::parse(Fcf::DTC.octet()));
        assert_eq!(name(0x00), "unknown");
    }

    #[test]
    fn every_fcf_parses_back_with_and_without_its_x_bit() {
        for &f in Fcf::ALL {
            assert_eq!(Fcf::parse(f.with_x(false)), Some(f), "{f:?}");
            assert_eq!(Fcf::parse(f.with_x(true)), Some(f), "{f:?}");
        }
        // DIS and DTC have no X bit: asking for one changes nothing.
        assert_eq!(Fcf::DIS.with_x(true), Fcf::DIS.octet());
        assert_eq!(Fcf::parse(PPS_NULL), None);
    }

    #[test]
    fn line_order_of_dcs_matches_table_5() {
        // T.30 writes DCS as X100 0001 in line order; T.38 sends the first line bit as the MSB.
        assert_eq!(Fcf::DCS.octet().reverse_bits() & 0x7f, 0b0100_0001);
        assert_eq!(CONTROL_FINAL.reverse_bits(), 0xC8);
    }

    #[test]
    fn idents_are_reversed_and_padded() {
        let f = encode_ident("+1 555 0100");
        assert_eq!(&f[9..], b"0010 555 1+");
        assert_eq!(decode_ident(&f), "+1 555 0100");
        assert_eq!(decode_ident(&[]), "");
    }
}
