//! IFP codec: golden vectors, round trips of every value in every version,
//! version rules and malformed input.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

mod common;

use common::{hex, parse_ifp, rows, to_hex, versions};
use t38::{DataType, Error, Field, FieldType, Ifp, IfpType, Indicator, T38Version};

/// Encodes `ifp` in `version`, expects `octets`, and decodes them back.
fn check(version: T38Version, ifp: &Ifp, octets: &[u8]) {
    let encoded = ifp.encode(version).unwrap();
    assert_eq!(
        to_hex(&encoded),
        to_hex(octets),
        "encoding {ifp} in {version:?}"
    );
    assert_eq!(
        &Ifp::decode(octets, version).unwrap(),
        ifp,
        "decoding {ifp}"
    );
}

#[test]
fn golden_vectors() {
    let table = rows(include_str!("data/ifp_golden.txt"));
    assert!(table.len() > 60);
    for row in table {
        let ifp = parse_ifp(&row[1]);
        let octets = hex(&row[2]);
        for v in versions(&row[0]) {
            check(v, &ifp, &octets);
        }
    }
}

#[test]
fn every_indicator_round_trips_in_every_version_that_has_it() {
    for &i in Indicator::ALL {
        for v in T38Version::ALL {
            let ifp = Ifp::indicator(i);
            match ifp.encode(v) {
                Ok(b) => assert_eq!(Ifp::decode(&b, v).unwrap(), ifp),
                Err(e) => {
                    assert_eq!(v, T38Version::V0);
                    assert!(i.number() >= 16, "{i} refused in {v:?}: {e}");
                }
            }
        }
    }
}

#[test]
fn every_data_and_field_type_round_trips() {
    for &d in DataType::ALL {
        for &f in FieldType::ALL {
            for v in T38Version::ALL {
                for data in [vec![], vec![0x5a], vec![0xa5; 300]] {
                    let ifp = Ifp::data(
                        d,
                        vec![
                            Field::new(f, data.clone()),
                            Field::bare(FieldType::HdlcSigEnd),
                        ],
                    );
                    let extension = d.number() >= 9 || f.number() >= 8;
                    match ifp.encode(v) {
                        Ok(b) => assert_eq!(Ifp::decode(&b, v).unwrap(), ifp, "{ifp} {v:?}"),
                        Err(Error::NotInVersion { .. }) => {
                            assert!(v == T38Version::V0 && extension, "{ifp} refused in {v:?}")
                        }
                        Err(e) => panic!("{ifp} {v:?}: {e}"),
                    }
                }
            }
        }
    }
}

#[test]
fn numbers_match_spandsp_enumerations() {
    // SpanDSP t38_core.h numbers all three lists as the ASN.1 does, the
    // extension values continuing the root count.
    assert_eq!(Indicator::V8Ansam.number(), 16);
    assert_eq!(Indicator::V33_14400Training.number(), 22);
    assert_eq!(DataType::V8.number(), 9);
    assert_eq!(DataType::V33_14400.number(), 14);
    assert_eq!(FieldType::CmMessage.number(), 8);
    assert_eq!(FieldType::V34Rate.number(), 11);
    assert_eq!(Indicator::ALL.len(), 23);
    assert_eq!(DataType::ALL.len(), 15);
    assert_eq!(FieldType::ALL.len(), 12);
}

#[test]
fn version_zero_refuses_extension_values() {
    let v0 = T38Version::V0;
    assert!(matches!(
        Ifp::indicator(Indicator::V8Ansam).encode(v0),
        Err(Error::NotInVersion {
            what: "v8-ansam",
            ..
        })
    ));
    assert!(matches!(
        Ifp::data(DataType::V34PriRate, vec![]).encode(v0),
        Err(Error::NotInVersion { .. })
    ));
    let jm = Ifp::data(DataType::V21, vec![Field::new(FieldType::JmMessage, [1])]);
    assert!(matches!(
        jm.encode(v0),
        Err(Error::NotInVersion {
            what: "jm-message",
            ..
        })
    ));
    // ... but extension indicators still decode in version 0, as in SpanDSP.
    assert_eq!(
        Ifp::decode(&[0x20, 0x00], v0).unwrap(),
        Ifp::indicator(Indicator::V8Ansam)
    );
}

#[test]
fn the_same_octets_mean_different_fields_in_version_0_and_1() {
    // v0 field octet 0x20 is hdlc-fcs-OK; in v1 it is hdlc-fcs-OK-sig-end.
    let b = [0xc0, 0x01, 0x20];
    assert_eq!(
        Ifp::decode(&b, T38Version::V0).unwrap().fields()[0].field_type,
        FieldType::HdlcFcsOk
    );
    assert_eq!(
        Ifp::decode(&b, T38Version::V1).unwrap().fields()[0].field_type,
        FieldType::HdlcFcsOkSigEnd
    );
}

#[test]
fn largest_field_and_over_long_field() {
    let big = vec![0x33; 65535];
    let ifp = Ifp::data(
        DataType::V17_14400,
        vec![Field::new(FieldType::T4NonEcmData, big)],
    );
    let b = ifp.encode(T38Version::V2).unwrap();
    assert_eq!(&b[..5], &[0xd0, 0x01, 0xb0, 0xff, 0xfe]);
    assert_eq!(b.len(), 5 + 65535);
    assert_eq!(Ifp::decode(&b, T38Version::V2).unwrap(), ifp);
    let too_big = Ifp::data(
        DataType::V17_14400,
        vec![Field::new(FieldType::T4NonEcmData, vec![0; 65536])],
    );
    assert_eq!(
        too_big.encode(T38Version::V2),
        Err(Error::FieldTooLong(65536))
    );
}

#[test]
fn field_counts_use_two_octet_and_fragmented_length_determinants() {
    for (n, head) in [
        (127usize, vec![0x7f]),
        (128, vec![0x80, 0x80]),
        (16383, vec![0xbf, 0xff]),
        (16384, vec![0xc1]),
        (40000, vec![0xc2]),
    ] {
        let fields = vec![Field::bare(FieldType::HdlcFcsOk); n];
        let ifp = Ifp::data(DataType::V21, fields);
        for v in [T38Version::V0, T38Version::V3] {
            let b = ifp.encode(v).unwrap();
            assert_eq!(&b[1..1 + head.len()], &head[..], "count {n}");
            assert_eq!(Ifp::decode(&b, v).unwrap(), ifp, "count {n} {v:?}");
        }
    }
}

#[test]
fn indicator_with_data_field_is_kept_as_received() {
    let ifp = Ifp {
        msg_type: IfpType::Indicator(Indicator::Cng),
        data_field: Some(vec![]),
    };
    let b = ifp.encode(T38Version::V1).unwrap();
    assert_eq!(b, [0x82, 0x00]);
    assert_eq!(Ifp::decode(&b, T38Version::V1).unwrap(), ifp);
}

#[test]
fn malformed_input_is_an_error() {
    let v = T38Version::V1;
    let cases: &[(&str, Error)] = &[
        ("", Error::Truncated),
        ("20", Error::Truncated),
        ("c0", Error::Truncated),
        ("c0 01 80 00", Error::Truncated),
        ("c0 01 80 0003 ff", Error::Truncated),
        ("c0 02 10", Error::Truncated),
        ("02 00", Error::TrailingOctets(1)),
        ("c0 01 10 00", Error::TrailingOctets(1)),
        // Root indices past the root: indicator 16 does not exist, data 9..15 neither.
        (
            "52",
            Error::UnknownValue {
                kind: "DataType",
                number: 9,
            },
        ),
        (
            "21c0",
            Error::UnknownValue {
                kind: "Indicator",
                number: 23,
            },
        ),
        (
            "61c0",
            Error::UnknownValue {
                kind: "DataType",
                number: 16,
            },
        ),
        (
            "c0 01 42 00",
            Error::UnknownValue {
                kind: "FieldType",
                number: 12,
            },
        ),
        // Extension index of 64 or more.
        ("30 00 00", Error::UnsupportedExtension),
        // Fragment multiplier 0 is not X.691.
        ("c0 c0", Error::BadLength),
        // Claims more fields than octets could hold.
        ("c0 bf ff 00", Error::Truncated),
    ];
    for (input, expect) in cases {
        assert_eq!(
            Ifp::decode(&hex(input), v).as_ref(),
            Err(expect),
            "input {input}"
        );
    }
}

#[test]
fn decode_prefix_returns_the_rest() {
    let (ifp, rest) = Ifp::decode_prefix(&[0x06, 0x00, 0x00], T38Version::V0).unwrap();
    assert_eq!(ifp, Ifp::indicator(Indicator::V21Preamble));
    assert_eq!(rest, [0, 0]);
}
