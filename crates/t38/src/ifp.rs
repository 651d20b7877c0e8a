//! T.38 IFP (Internet Facsimile Protocol) packets, ITU-T T.38 clause 6 and
//! Annex A (ASN.1 module), encoded with ASN.1 aligned PER (X.691).
//!
//! The PER layout of an `IFPPacket`, bit by bit:
//!
//! | bits | meaning |
//! |------|---------|
//! | 1 | `data-field` present (the SEQUENCE's OPTIONAL bitmap) |
//! | 1 | `type-of-msg` CHOICE index: 0 `t30-indicator`, 1 `t30-data` |
//! | 1 | enumeration extension bit |
//! | 4 | root index (extension bit 0), or 1 + 6 bits of extension index |
//! | … | padding to the octet, then the `data-field` SEQUENCE OF |
//!
//! Each `data-field` element is a field-present bit, the `field-type`
//! enumeration (version 0: 3 bits, no extension bit; versions 1 to 3: an
//! extension bit and 3 bits, or 1 + 1 + 6 bits for an extension value)
//! and, when present, `field-data` as a two-octet aligned length − 1 and the
//! octets. An element without `field-data` is not padded: the next element
//! starts at the next bit (X.691 aligns only lengths and octet strings).

use crate::Error;
use crate::per::{Reader, Writer, read_list, write_list};

/// The T.38 version negotiated for the call (SDP `T38FaxVersion`).
///
/// Version 0 is T.38 (1998), whose ASN.1 has no extension marker in
/// `field-type` (the "pre-corrigendum" module, T.38 Annex A 1998); versions
/// 1 to 3 use the later module where `field-type` is extensible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum T38Version {
    /// T.38 (1998), `T38FaxVersion:0`.
    #[default]
    V0,
    /// `T38FaxVersion:1`.
    V1,
    /// `T38FaxVersion:2`.
    V2,
    /// `T38FaxVersion:3` (V.34 and V.33 support).
    V3,
}

impl T38Version {
    /// All versions, oldest first.
    pub const ALL: [T38Version; 4] = [Self::V0, Self::V1, Self::V2, Self::V3];

    /// The version for an SDP `T38FaxVersion` value.
    pub fn from_number(n: u8) -> Result<Self, Error> {
        match n {
            0 => Ok(Self::V0),
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            _ => Err(Error::UnsupportedVersion(n)),
        }
    }

    /// The SDP `T38FaxVersion` number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Whether `field-type` carries an extension bit (not in version 0).
    fn extensible_field_type(self) -> bool {
        self != Self::V0
    }
}

/// Declares a T.38 enumeration: root values then extension additions, with
/// the ASN.1 names, and the index helpers PER needs.
macro_rules! t38_enum {
    (
        $(#[$meta:meta])* $name:ident, root = $root:literal, bits = $bits:literal,
        { $( $(#[$vmeta:meta])* $var:ident = $asn:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $var, )*
        }

        impl $name {
            /// Every value, root values first, in ASN.1 order.
            pub const ALL: &'static [$name] = &[$( $name::$var, )*];
            /// How many values are in the root (before the `...`).
            const ROOT: u8 = $root;
            /// Bits of the root index in PER.
            const ROOT_BITS: u8 = $bits;

            /// The name used in the T.38 ASN.1 module.
            pub fn asn1_name(self) -> &'static str {
                match self { $( $name::$var => $asn, )* }
            }

            /// Position in the ASN.1 list: root values 0.., then extension
            /// additions continuing the count (SpanDSP numbers them alike).
            pub fn number(self) -> u8 {
                self as u8
            }

            /// The value for a [`number`](Self::number).
            pub fn from_number(n: u8) -> Option<Self> {
                Self::ALL.get(usize::from(n)).copied()
            }

            fn is_extension(self) -> bool {
                self.number() >= Self::ROOT
            }

            fn write(self, w: &mut Writer, extensible: bool) {
                if self.is_extension() {
                    w.bit(true);
                    w.small_whole(self.number() - Self::ROOT);
                } else {
                    if extensible {
                        w.bit(false);
                    }
                    w.bits(u32::from(self.number()), Self::ROOT_BITS);
                }
            }

            fn read(r: &mut Reader<'_>, extensible: bool) -> Result<Self, Error> {
                let n = if extensible && r.bit()? {
                    let ext = r.small_whole()?;
                    Self::ROOT.checked_add(ext).ok_or(Error::UnsupportedExtension)?
                } else {
                    let n = r.bits(Self::ROOT_BITS)? as u8;
                    if n >= Self::ROOT {
                        return Err(Error::UnknownValue { kind: stringify!($name), number: n });
                    }
                    n
                };
                Self::from_number(n).ok_or(Error::UnknownValue { kind: stringify!($name), number: n })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.asn1_name())
            }
        }
    };
}

t38_enum! {
    /// `t30-indicator`: the signal the sending gateway or terminal sees
    /// (T.38 clause 6.2, Table 1).
    Indicator, root = 16, bits = 4, {
        /// No signal (also ends the previous modulation).
        NoSignal = "no-signal",
        /// Calling tone CNG (1100 Hz).
        Cng = "cng",
        /// Called station identification CED (2100 Hz).
        Ced = "ced",
        /// V.21 HDLC flags are being sent.
        V21Preamble = "v21-preamble",
        /// V.27ter 2400 bit/s training.
        V27ter2400Training = "v27-2400-training",
        /// V.27ter 4800 bit/s training.
        V27ter4800Training = "v27-4800-training",
        /// V.29 7200 bit/s training.
        V29_7200Training = "v29-7200-training",
        /// V.29 9600 bit/s training.
        V29_9600Training = "v29-9600-training",
        /// V.17 7200 bit/s short training.
        V17_7200ShortTraining = "v17-7200-short-training",
        /// V.17 7200 bit/s long training.
        V17_7200LongTraining = "v17-7200-long-training",
        /// V.17 9600 bit/s short training.
        V17_9600ShortTraining = "v17-9600-short-training",
        /// V.17 9600 bit/s long training.
        V17_9600LongTraining = "v17-9600-long-training",
        /// V.17 12000 bit/s short training.
        V17_12000ShortTraining = "v17-12000-short-training",
        /// V.17 12000 bit/s long training.
        V17_12000LongTraining = "v17-12000-long-training",
        /// V.17 14400 bit/s short training.
        V17_14400ShortTraining = "v17-14400-short-training",
        /// V.17 14400 bit/s long training.
        V17_14400LongTraining = "v17-14400-long-training",
        /// V.8 ANSam (extension).
        V8Ansam = "v8-ansam",
        /// V.8 signal (extension).
        V8Signal = "v8-signal",
        /// V.34 control channel 1200 bit/s (extension).
        V34CntlChannel1200 = "v34-cntl-channel-1200",
        /// V.34 primary channel (extension).
        V34PriChannel = "v34-pri-channel",
        /// V.34 control channel retrain (extension).
        V34CcRetrain = "v34-CC-retrain",
        /// V.33 12000 bit/s training (extension).
        V33_12000Training = "v33-12000-training",
        /// V.33 14400 bit/s training (extension).
        V33_14400Training = "v33-14400-training",
    }
}

t38_enum! {
    /// `t30-data`: the modulation the data fields were (or are to be)
    /// carried by (T.38 clause 6.3).
    DataType, root = 9, bits = 4, {
        /// V.21 channel 2, 300 bit/s (T.30 control messages).
        V21 = "v21",
        /// V.27ter 2400 bit/s.
        V27ter2400 = "v27-2400",
        /// V.27ter 4800 bit/s.
        V27ter4800 = "v27-4800",
        /// V.29 7200 bit/s.
        V29_7200 = "v29-7200",
        /// V.29 9600 bit/s.
        V29_9600 = "v29-9600",
        /// V.17 7200 bit/s.
        V17_7200 = "v17-7200",
        /// V.17 9600 bit/s.
        V17_9600 = "v17-9600",
        /// V.17 12000 bit/s.
        V17_12000 = "v17-12000",
        /// V.17 14400 bit/s.
        V17_14400 = "v17-14400",
        /// V.8 (extension).
        V8 = "v8",
        /// V.34 primary channel rate (extension).
        V34PriRate = "v34-pri-rate",
        /// V.34 control channel 1200 bit/s (extension).
        V34Cc1200 = "v34-CC-1200",
        /// V.34 primary channel (extension).
        V34PriCh = "v34-pri-ch",
        /// V.33 12000 bit/s (extension).
        V33_12000 = "v33-12000",
        /// V.33 14400 bit/s (extension).
        V33_14400 = "v33-14400",
    }
}

t38_enum! {
    /// `field-type` of one element of a `data-field` (T.38 clause 6.3).
    FieldType, root = 8, bits = 3, {
        /// HDLC data (flags and zero-bit stuffing removed, FCS not included).
        HdlcData = "hdlc-data",
        /// End of the HDLC signal (carrier off).
        HdlcSigEnd = "hdlc-sig-end",
        /// The frame's FCS checked OK.
        HdlcFcsOk = "hdlc-fcs-OK",
        /// The frame's FCS was bad.
        HdlcFcsBad = "hdlc-fcs-BAD",
        /// FCS OK and end of the signal.
        HdlcFcsOkSigEnd = "hdlc-fcs-OK-sig-end",
        /// FCS bad and end of the signal.
        HdlcFcsBadSigEnd = "hdlc-fcs-BAD-sig-end",
        /// T.4 non-ECM image data (or TCF).
        T4NonEcmData = "t4-non-ecm-data",
        /// End of the T.4 non-ECM signal.
        T4NonEcmSigEnd = "t4-non-ecm-sig-end",
        /// V.8 CM message (extension; not in version 0).
        CmMessage = "cm-message",
        /// V.8 JM message (extension; not in version 0).
        JmMessage = "jm-message",
        /// V.8 CI message (extension; not in version 0).
        CiMessage = "ci-message",
        /// V.34 rate (extension; not in version 0).
        V34Rate = "v34rate",
    }
}

/// The IFP `type-of-msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfpType {
    /// `t30-indicator`.
    Indicator(Indicator),
    /// `t30-data`.
    Data(DataType),
}

/// One element of an IFP `data-field`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// `field-type`.
    pub field_type: FieldType,
    /// `field-data`, 0 to 65535 octets; empty means the optional
    /// `field-data` is absent (PER cannot carry an empty one).
    pub data: Vec<u8>,
}

impl Field {
    /// A field with data (or none, if `data` is empty).
    pub fn new(field_type: FieldType, data: impl Into<Vec<u8>>) -> Self {
        Self {
            field_type,
            data: data.into(),
        }
    }

    /// A field without `field-data` (e.g. [`FieldType::HdlcFcsOk`]).
    pub fn bare(field_type: FieldType) -> Self {
        Self {
            field_type,
            data: Vec::new(),
        }
    }
}

/// An `IFPPacket`.
///
/// `data_field` is the OPTIONAL `data-field`: `None` when absent. Indicators
/// normally have none and data packets normally have one, but both shapes
/// are valid PER and are kept as received so that re-encoding is exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ifp {
    /// `type-of-msg`.
    pub msg_type: IfpType,
    /// `data-field`, if present.
    pub data_field: Option<Vec<Field>>,
}

/// Largest `field-data`: `OCTET STRING (SIZE (1..65535))`.
pub const MAX_FIELD_DATA: usize = 65535;

impl Ifp {
    /// An indicator packet.
    pub fn indicator(indicator: Indicator) -> Self {
        Self {
            msg_type: IfpType::Indicator(indicator),
            data_field: None,
        }
    }

    /// A data packet carrying `fields`.
    pub fn data(data_type: DataType, fields: Vec<Field>) -> Self {
        Self {
            msg_type: IfpType::Data(data_type),
            data_field: Some(fields),
        }
    }

    /// Encodes for the negotiated `version`.
    ///
    /// Fails for values the version's ASN.1 cannot carry: extension
    /// indicators, data types and field types in version 0 (SpanDSP also
    /// refuses to send those in version 0), and `field-data` over 65535
    /// octets.
    pub fn encode(&self, version: T38Version) -> Result<Vec<u8>, Error> {
        let mut w = Writer::new();
        w.bit(self.data_field.is_some());
        match self.msg_type {
            IfpType::Indicator(i) => {
                w.bit(false);
                if version == T38Version::V0 && i.is_extension() {
                    return Err(Error::NotInVersion {
                        what: i.asn1_name(),
                        version,
                    });
                }
                i.write(&mut w, true);
            }
            IfpType::Data(d) => {
                w.bit(true);
                if version == T38Version::V0 && d.is_extension() {
                    return Err(Error::NotInVersion {
                        what: d.asn1_name(),
                        version,
                    });
                }
                d.write(&mut w, true);
            }
        }
        if let Some(fields) = &self.data_field {
            write_list(&mut w, fields, |w, f| write_field(w, f, version))?;
        }
        Ok(w.finish())
    }

    /// Decodes one IFP occupying exactly `bytes` (T.38 carries IFPs as PER
    /// open types, so their length is known). Never panics.
    pub fn decode(bytes: &[u8], version: T38Version) -> Result<Self, Error> {
        let (ifp, rest) = Self::decode_prefix(bytes, version)?;
        if rest.is_empty() {
            Ok(ifp)
        } else {
            Err(Error::TrailingOctets(rest.len()))
        }
    }

    /// Decodes an IFP from the front of `bytes` and returns the unread
    /// octets (for IFP streams, and FEC-repaired packets, whose repair
    /// leaves zero octets of padding).
    pub fn decode_prefix(bytes: &[u8], version: T38Version) -> Result<(Self, &[u8]), Error> {
        let mut r = Reader::new(bytes);
        let present = r.bit()?;
        let msg_type = if r.bit()? {
            IfpType::Data(DataType::read(&mut r, true)?)
        } else {
            IfpType::Indicator(Indicator::read(&mut r, true)?)
        };
        let data_field = if present {
            // Every element takes at least four bits.
            Some(read_list(&mut r, 2, |r| read_field(r, version))?)
        } else {
            None
        };
        r.align();
        Ok((
            Self {
                msg_type,
                data_field,
            },
            r.rest(),
        ))
    }

    /// The fields of the data field (empty if absent).
    pub fn fields(&self) -> &[Field] {
        self.data_field.as_deref().unwrap_or(&[])
    }
}

fn write_field(w: &mut Writer, f: &Field, version: T38Version) -> Result<(), Error> {
    if f.data.len() > MAX_FIELD_DATA {
        return Err(Error::FieldTooLong(f.data.len()));
    }
    w.bit(!f.data.is_empty());
    if !version.extensible_field_type() && f.field_type.is_extension() {
        return Err(Error::NotInVersion {
            what: f.field_type.asn1_name(),
            version,
        });
    }
    f.field_type.write(w, version.extensible_field_type());
    if !f.data.is_empty() {
        w.align();
        // Constrained whole number 1..65535: two aligned octets, value − 1
        // (X.691 11.5.7.3 with 11.9.3.3).
        w.bits((f.data.len() - 1) as u32, 16);
        w.octets(&f.data);
    }
    Ok(())
}

fn read_field(r: &mut Reader<'_>, version: T38Version) -> Result<Field, Error> {
    let present = r.bit()?;
    let field_type = FieldType::read(r, version.extensible_field_type())?;
    let data = if present {
        r.align();
        let len = r.bits(16)? as usize + 1;
        r.octets(len)?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Field { field_type, data })
}

impl std::fmt::Display for Ifp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.msg_type {
            IfpType::Indicator(i) => write!(f, "indicator {i}")?,
            IfpType::Data(d) => write!(f, "data {d}")?,
        }
        for field in self.fields() {
            write!(f, " {}+{}", field.field_type, field.data.len())?;
        }
        Ok(())
    }
}
