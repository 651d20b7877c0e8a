//! Interop with SpanDSP's t38_core (Debian libspandsp-dev): a tiny C peer
//! (tests/data/spandsp_peer.c), compiled at test time, encodes every IFP
//! SpanDSP can send and decodes ours. Bytes must agree in both directions
//! except for the documented differences (see the crate docs).
//!
//! Without SpanDSP the test is skipped, unless FAXHUB_SLOW_TESTS=1, when it
//! fails.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::{hex, to_hex};
use t38::{DataType, Field, FieldType, Ifp, IfpType, Indicator, T38Version};

#[path = "../../testkit/src/gate.rs"]
mod gate;

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn line(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn read(&mut self) -> String {
        let mut s = String::new();
        assert!(self.stdout.read_line(&mut s).unwrap() > 0, "peer exited");
        s.trim().to_string()
    }

    fn encode(&mut self, ifp: &Ifp) -> String {
        let cmd = match ifp.msg_type {
            IfpType::Indicator(i) => format!("E ind {}", i.number()),
            IfpType::Data(d) => {
                let mut c = format!("E data {}", d.number());
                for f in ifp.fields() {
                    let data = if f.data.is_empty() {
                        "-".into()
                    } else {
                        to_hex(&f.data)
                    };
                    c += &format!(" {} {data}", f.field_type.number());
                }
                c
            }
        };
        self.line(&cmd);
        self.read()
    }

    /// SpanDSP's callbacks for `bytes`, then its return code.
    fn decode(&mut self, bytes: &[u8]) -> Vec<String> {
        self.line(&format!("D {}", to_hex(bytes)));
        let mut out = Vec::new();
        loop {
            let l = self.read();
            let done = l.starts_with("rc ");
            out.push(l);
            if done {
                return out;
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_peer(name: &str) -> Option<Peer> {
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "spandsp"])
        .output();
    let flags = match flags {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        _ => {
            gate::needs(
                "libspandsp-dev (pkg-config spandsp)",
                false,
                "apt-get install libspandsp-dev and a C compiler",
            );
            return None;
        }
    };
    let dir = std::env::temp_dir().join(format!("t38-spandsp-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("spandsp_peer");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/spandsp_peer.c");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(flags.split_whitespace())
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {}", src.display());
    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Some(Peer {
        child,
        stdin,
        stdout,
    })
}

/// Every IFP shape SpanDSP's encoder produces, for `v`.
fn cases(v: T38Version) -> Vec<Ifp> {
    let root_only = v == T38Version::V0;
    let mut out: Vec<Ifp> = Indicator::ALL
        .iter()
        .filter(|i| !root_only || i.number() < 16)
        .map(|&i| Ifp::indicator(i))
        .collect();
    for &d in DataType::ALL
        .iter()
        .filter(|d| !root_only || d.number() < 9)
    {
        out.push(Ifp {
            msg_type: IfpType::Data(d),
            data_field: None,
        });
        for &f in FieldType::ALL
            .iter()
            .filter(|f| !root_only || f.number() < 8)
        {
            for data in [vec![], vec![0x5a], (0..=255).collect::<Vec<u8>>()] {
                out.push(Ifp::data(d, vec![Field::new(f, data)]));
            }
        }
        for (a, b) in [
            (FieldType::HdlcData, FieldType::HdlcFcsOk),
            (FieldType::HdlcData, FieldType::HdlcFcsOkSigEnd),
            (FieldType::HdlcData, FieldType::HdlcFcsBadSigEnd),
            (FieldType::T4NonEcmData, FieldType::T4NonEcmSigEnd),
        ] {
            out.push(Ifp::data(d, vec![Field::new(a, [1, 2, 3]), Field::bare(b)]));
            out.push(Ifp::data(
                d,
                vec![Field::new(a, [1, 2, 3]), Field::new(b, [4])],
            ));
        }
    }
    out
}

/// The documented difference: SpanDSP shifts extension field types other
/// than cm-message by one bit.
fn spandsp_differs(ifp: &Ifp, v: T38Version) -> bool {
    v != T38Version::V0
        && ifp
            .fields()
            .iter()
            .any(|f| f.field_type.number() > FieldType::CmMessage.number())
}

fn expected_callbacks(ifp: &Ifp) -> Vec<String> {
    let mut out = Vec::new();
    match ifp.msg_type {
        IfpType::Indicator(i) => out.push(format!("ind {}", i.number())),
        IfpType::Data(d) => {
            for f in ifp.fields() {
                let data = if f.data.is_empty() {
                    "-".into()
                } else {
                    to_hex(&f.data)
                };
                out.push(format!(
                    "field {} {} {data}",
                    d.number(),
                    f.field_type.number()
                ));
            }
        }
    }
    out.push("rc 0".into());
    out
}

#[test]
fn ifp_octets_agree_with_spandsp_both_ways() {
    let Some(mut peer) = spawn_peer("both_ways") else {
        return;
    };
    let mut compared = 0;
    let mut differing = 0;
    for v in T38Version::ALL {
        peer.line(&format!("V {}", v.number()));
        for ifp in cases(v) {
            let ours = ifp.encode(v).unwrap();
            let theirs = peer.encode(&ifp);
            if spandsp_differs(&ifp, v) {
                assert_ne!(
                    theirs,
                    to_hex(&ours),
                    "{ifp} in {v:?} was expected to differ"
                );
                assert_ne!(Ifp::decode(&hex(&theirs), v).ok().as_ref(), Some(&ifp));
                differing += 1;
                continue;
            }
            assert_eq!(
                theirs,
                to_hex(&ours),
                "SpanDSP vs ours encoding {ifp} in {v:?}"
            );
            assert_eq!(Ifp::decode(&hex(&theirs), v).unwrap(), ifp, "{v:?}");
            assert_eq!(
                peer.decode(&ours),
                expected_callbacks(&ifp),
                "SpanDSP decoding {ifp} in {v:?}"
            );
            compared += 1;
        }
    }
    assert!(compared > 1000, "only {compared} cases compared");
    assert!(differing > 0);
}

#[test]
fn spandsp_writes_an_octet_per_field_without_data() {
    let Some(mut peer) = spawn_peer("padding") else {
        return;
    };
    let two_bare = Ifp::data(
        DataType::V21,
        vec![
            Field::bare(FieldType::HdlcFcsOk),
            Field::bare(FieldType::HdlcSigEnd),
        ],
    );
    peer.line("V 2");
    assert_eq!(peer.encode(&two_bare), "c0021008");
    assert_eq!(
        to_hex(&two_bare.encode(T38Version::V2).unwrap()),
        "c0021040"
    );
    // Version 0: X.691 packs both into one octet, as SpanDSP's decoder
    // expects, yet its encoder still writes an octet per field.
    peer.line("V 0");
    assert_eq!(to_hex(&two_bare.encode(T38Version::V0).unwrap()), "c00221");
    assert_eq!(
        peer.decode(&hex("c00221")),
        ["field 0 2 -", "field 0 1 -", "rc 0"]
    );
    assert_eq!(peer.encode(&two_bare), "c0022010");
}
