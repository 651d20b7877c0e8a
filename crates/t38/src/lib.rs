//! ITU-T T.38 for faxhub: IFP packets and their UDPTL transport, sans I/O.
//!
//! * [`ifp`]: the `IFPPacket` of T.38 Annex A in ASN.1 aligned PER, for
//!   T.38 versions 0 to 3 ([`Ifp`], [`IfpType`], [`Indicator`],
//!   [`DataType`], [`Field`], [`FieldType`], [`T38Version`]).
//! * [`udptl`]: the `UDPTLPacket` of T.38 clause 9.1 ([`UdptlPacket`]), a
//!   [`UdptlSender`] adding redundancy or FEC ([`ErrorRecovery`]) and a
//!   [`UdptlReceiver`] that undoes loss, duplication and reordering.
//!
//! No sockets, clocks, threads or tokio: bytes in, bytes or values out.
//!
//! # Calling contract
//!
//! Sending: build one [`UdptlSender`] per call from the negotiated SDP
//! (`T38FaxVersion`, `T38FaxUdpEC`, the far end's `T38FaxMaxDatagram`).
//! For each IFP, in order, call [`UdptlSender::build`] and send the
//! returned datagram as one UDP payload. Each call consumes one sequence
//! number; pacing (when to call it) is the caller's business.
//!
//! Receiving: build one [`UdptlReceiver`] per call. Pass every UDP payload,
//! as it arrives, to [`UdptlReceiver::handle_datagram`], then call
//! [`UdptlReceiver::poll_ifp`] until it returns `None`. IFPs come out in
//! sequence order, each exactly once, whether they came in their own
//! datagram or were recovered from a later one. A malformed datagram is
//! counted and its error returned; the receiver is unaffected, so log it
//! and carry on. The receiver has no clock: it holds IFPs that follow a
//! gap until the gap is filled or `reorder_window` newer sequence numbers
//! have arrived. When the far end goes quiet for longer than the caller
//! wants to wait (say 200 ms) or the call ends, call
//! [`UdptlReceiver::flush`] to deliver what is held. Counters are in
//! [`UdptlReceiver::stats`].
//!
//! ```
//! use t38::{
//!     DataType, ErrorRecovery, Field, FieldType, Ifp, Indicator, ReceiverConfig, SenderConfig,
//!     T38Version, UdptlReceiver, UdptlSender,
//! };
//!
//! let mut tx = UdptlSender::new(SenderConfig {
//!     version: T38Version::V0,
//!     recovery: ErrorRecovery::Redundancy { depth: 3 },
//!     max_datagram: 400,
//!     first_seq: 0,
//! });
//! let mut rx = UdptlReceiver::new(ReceiverConfig::default());
//! let dis_start = Ifp::data(DataType::V21, vec![Field::new(FieldType::HdlcData, [0xff, 0xc8, 0x01])]);
//! let dis_end = Ifp::data(DataType::V21, vec![Field::bare(FieldType::HdlcFcsOkSigEnd)]);
//! let preamble = tx.build(&Ifp::indicator(Indicator::V21Preamble))?;
//! let data = tx.build(&dis_start)?;
//! let end = tx.build(&dis_end)?;
//! rx.handle_datagram(&preamble)?;
//! // The data datagram is lost; the next one carries it as redundancy.
//! drop(data);
//! rx.handle_datagram(&end)?;
//! let got: Vec<_> = std::iter::from_fn(|| rx.poll_ifp()).collect();
//! assert_eq!(got.len(), 3);
//! assert_eq!((got[1].seq, got[1].recovered), (1, true));
//! assert_eq!(got[1].ifp, dis_start);
//! # Ok::<(), t38::Error>(())
//! ```
//!
//! Nothing on a path reached by received bytes panics; all parsing errors
//! are [`Error`] values.
//!
//! # Known differences between implementations
//!
//! * Version 0 (T.38 1998) `field-type` has no extension bit, so a field
//!   costs 4 bits before its data, and two fields without data share an
//!   octet. Versions 1 to 3 add the bit (5 bits per field). Choosing the
//!   wrong version garbles every data packet.
//! * SpanDSP (`t38_core.c`) refuses to send extension indicators and data
//!   types (V.8, V.34, V.33) in version 0; so does [`Ifp::encode`]. Both
//!   decode them in any version.
//! * SpanDSP's encoder starts every `data-field` element at an octet
//!   boundary, where X.691 continues at the next bit after an element
//!   without `field-data`. Its decoder does the same in versions 1 to 3,
//!   but packs version 0 elements as X.691 does (so it misreads its own
//!   version 0 output there). All agree whenever only the last element
//!   lacks data, which is all SpanDSP's terminal and gateway send (e.g.
//!   `hdlc-data` + `hdlc-fcs-OK`). This crate follows X.691, as Wireshark
//!   does; `tests/spandsp.rs` pins the differences against libspandsp.
//! * SpanDSP writes the extension `field-type` values (`cm-message` ..
//!   `v34rate`) one bit later than X.691's normally-small-number layout
//!   (its 6-bit value starts at bit 3 rather than bit 4 of the first
//!   octet), so `jm-message`, `ci-message` and `v34rate` differ on the wire
//!   (`cm-message`, value 0, happens to agree). This crate follows X.691.
//! * FEC: the parity layout is SpanDSP's / FreeSWITCH's (see [`udptl`]).
//!   FreeSWITCH drops trailing parity entries that do not fit the datagram,
//!   which changes what the remaining ones cover; [`UdptlSender`] instead
//!   sends no parity in such a datagram.

pub mod ifp;
mod per;
pub mod udptl;

pub use ifp::{DataType, Field, FieldType, Ifp, IfpType, Indicator, T38Version};
pub use udptl::{
    ErrorRecovery, ReceivedIfp, ReceiverConfig, ReceiverStats, RecoveryData, SenderConfig,
    UdptlPacket, UdptlReceiver, UdptlSender,
};

/// Everything that can go wrong encoding or decoding T.38.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet ended in the middle of a value.
    #[error("packet truncated")]
    Truncated,
    /// Octets were left after the packet's last value.
    #[error("{0} unexpected octet(s) after the packet")]
    TrailingOctets(usize),
    /// A length determinant is not one X.691 allows.
    #[error("invalid length determinant")]
    BadLength,
    /// An enumeration value this implementation does not know.
    #[error("unknown {kind} value {number}")]
    UnknownValue {
        /// Which enumeration (`Indicator`, `DataType`, `FieldType`).
        kind: &'static str,
        /// Its position in the ASN.1 list.
        number: u8,
    },
    /// An enumeration extension index of 64 or more.
    #[error("unsupported enumeration extension")]
    UnsupportedExtension,
    /// The value cannot be encoded in the negotiated T.38 version.
    #[error("{what} cannot be sent in T.38 version {}", version.number())]
    NotInVersion {
        /// The ASN.1 name of the value.
        what: &'static str,
        /// The version.
        version: T38Version,
    },
    /// `field-data` longer than 65535 octets.
    #[error("field data of {0} octets exceeds 65535")]
    FieldTooLong(usize),
    /// A T.38 version number other than 0 to 3.
    #[error("unsupported T.38 version {0}")]
    UnsupportedVersion(u8),
    /// A UDPTL datagram with an empty IFP.
    #[error("empty IFP packet")]
    EmptyIfp,
    /// A UDPTL `fec-npackets` that is negative or absurdly long.
    #[error("invalid FEC information")]
    BadFec,
    /// The IFP alone does not fit the far end's maximum datagram.
    #[error("datagram of {size} octets exceeds the maximum of {max}")]
    DatagramTooLarge {
        /// Size of the datagram without any error recovery.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}
