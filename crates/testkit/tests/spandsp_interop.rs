//! Interop with SpanDSP (Debian libspandsp-dev), an independent T.30 / T.38 implementation: our
//! `faxhub t38 send|receive` against the SpanDSP peer (`spandsp/faxpeer.c`) over UDPTL on 127.0.0.1, both
//! directions, 1 and 3 pages, ECM on and off, MH / MR / MMR, 14400 and 9600 bit/s, and 5 % loss each
//! way with redundancy 3. Every case compares the pages received with the pages sent, pixel by pixel.
//!
//! These run in real time (paced like a gateway needs), all cases at once. Without libspandsp the test
//! is skipped, unless FAXHUB_SLOW_TESTS=1, when it fails.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::harness::faxhub_bin;
use testkit::spandsp::{Peer, faxpeer, free_udp_port, same_pages};

#[derive(Debug, Clone, Copy)]
enum Dir {
    /// faxhub sends, SpanDSP receives.
    OursToSpandsp,
    SpandspToOurs,
}

#[derive(Debug, Clone)]
struct Case {
    dir: Dir,
    pages: usize,
    ecm: bool,
    compression: &'static str,
    rate: u32,
    /// Random loss each way; each loss takes `burst` datagrams in a row.
    loss: f64,
    burst: u32,
    /// The SpanDSP sender drops once, for good, this piece of an ECM frame (`F:K`, faxpeer --drop-frame).
    drop_frame: Option<&'static str>,
    /// The SpanDSP sender also sends one datagram with a sequence number far away (`AT:DELTA`).
    inject: Option<&'static str>,
    /// Our receiver learns the far end from the first datagram, and a stray one arrives before it.
    stray_first: bool,
    /// Without ECM under loss pages may arrive damaged: then they must say so.
    lossy_pages: bool,
}

impl Case {
    fn new(dir: Dir, pages: usize, ecm: bool, compression: &'static str, rate: u32) -> Self {
        Self {
            dir,
            pages,
            ecm,
            compression,
            rate,
            loss: 0.0,
            burst: 1,
            drop_frame: None,
            inject: None,
            stray_first: false,
            lossy_pages: false,
        }
    }
}

fn documents(dir: &Path) -> (PathBuf, PathBuf) {
    let fax = faxhub_bin().unwrap();
    let mut texts = Vec::new();
    for i in 1..=3 {
        let t = dir.join(format!("page{i}.txt"));
        let body: String = (0..40)
            .map(|l| {
                format!(
                    "Page {i}, line {l}: the quick brown fox jumps over the lazy dog {}\n",
                    l * i
                )
            })
            .collect();
        std::fs::write(&t, body).unwrap();
        texts.push(t);
    }
    let one = dir.join("one.tif");
    let three = dir.join("three.tif");
    for (out, inputs) in [(&one, &texts[..1]), (&three, &texts[..])] {
        let st = Command::new(&fax)
            .arg("convert")
            .args(inputs)
            .arg("-o")
            .arg(out)
            .args(["--compression", "mh"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    (one, three)
}

fn run_case(peer: &Path, dir: &Path, doc: &Path, c: &Case, n: usize) -> Result<String, String> {
    let (p_ours, p_peer) = (free_udp_port().unwrap(), free_udp_port().unwrap());
    let ours = format!("127.0.0.1:{p_ours}");
    let theirs = format!("127.0.0.1:{p_peer}");
    let received = dir.join(format!("rx{n}.tif"));
    let mut peer_args: Vec<String> = vec![
        "--local".into(),
        theirs.clone(),
        "--remote".into(),
        ours.clone(),
        "--max-rate".into(),
        c.rate.to_string(),
        "--compressions".into(),
        c.compression.into(),
        "--redundancy".into(),
        "3".into(),
        "--timeout".into(),
        "150".into(),
        "--seed".into(),
        n.to_string(),
    ];
    peer_args.push(if c.ecm {
        "--ecm".into()
    } else {
        "--no-ecm".into()
    });
    if c.loss > 0.0 {
        peer_args.extend(["--loss".into(), c.loss.to_string()]);
        peer_args.extend(["--burst".into(), c.burst.to_string()]);
    }
    if let Some(d) = c.drop_frame {
        peer_args.extend(["--drop-frame".into(), d.into()]);
    }
    if let Some(i) = c.inject {
        peer_args.extend(["--inject".into(), i.into()]);
    }
    let mut ours_cmd = Command::new(faxhub_bin().unwrap());
    ours_cmd.arg("t38");
    let (peer_mode, peer_file, sent) = match c.dir {
        Dir::OursToSpandsp => {
            ours_cmd.args(["send", "--remote", &theirs]);
            ("receive", received.clone(), doc.to_path_buf())
        }
        Dir::SpandspToOurs => {
            ours_cmd.arg("receive");
            if !c.stray_first {
                ours_cmd.args(["--remote", &theirs]);
            }
            ours_cmd.args(["--wait", "30", "--out"]).arg(&received);
            ("send", doc.to_path_buf(), doc.to_path_buf())
        }
    };
    peer_args.extend(["--file".into(), peer_file.display().to_string()]);
    ours_cmd.args([
        "--local",
        &ours,
        "--max-rate",
        &c.rate.to_string(),
        "--compressions",
        c.compression,
        "--redundancy",
        "3",
        "--seed",
        &n.to_string(),
    ]);
    ours_cmd.arg(if c.ecm { "--ecm" } else { "--no-ecm" });
    if c.loss > 0.0 {
        ours_cmd.args(["--simulate-loss", &c.loss.to_string()]);
        ours_cmd.args(["--simulate-burst", &c.burst.to_string()]);
    }
    if let Dir::OursToSpandsp = c.dir {
        ours_cmd.arg(doc);
    }
    // The receiver first, so that it is listening when the caller starts.
    let (peer, ours_out) = match c.dir {
        Dir::OursToSpandsp => {
            let peer = Peer::start(peer, peer_mode, &peer_args).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            (peer, ours_cmd.output().unwrap())
        }
        Dir::SpandspToOurs => {
            let child = ours_cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            if c.stray_first {
                // From another port, before the caller: not a datagram that opens a fax call.
                let stray = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                stray.send_to(b"\x00\x05\x02\x01\x00", &ours).unwrap();
                stray.send_to(b"hello?", &ours).unwrap();
            }
            let peer = Peer::start(peer, peer_mode, &peer_args).unwrap();
            (peer, child.wait_with_output().unwrap())
        }
    };
    let (po, perr) = peer
        .wait(Duration::from_secs(180))
        .map_err(|e| format!("{c:?}: {e:#}"))?;
    let ours_stdout = String::from_utf8_lossy(&ours_out.stdout).into_owned();
    let ours_stderr = String::from_utf8_lossy(&ours_out.stderr).into_owned();
    let ctx = format!(
        "{c:?}\nfaxhub: {ours_stdout}{ours_stderr}\nspandsp: {po:?}\n{}",
        perr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    if c.lossy_pages {
        return honest_damage(&sent, &received, c, &po, ours_out.status.success(), &ctx);
    }
    if !ours_out.status.success() || po.code != 0 {
        return Err(format!("call failed: {ctx}"));
    }
    let pages = same_pages(&sent, &received).map_err(|e| format!("pages differ: {e:#}\n{ctx}"))?;
    if c.drop_frame.is_some() && !ours_stdout.contains("pprs=1 ") {
        return Err(format!(
            "one piece of one frame was lost: one PPR expected\n{ctx}"
        ));
    }
    let want = if c.pages == 1 { 1 } else { 3 };
    if pages != want || po.pages as usize != want {
        return Err(format!(
            "{pages} pages compared, peer says {}, want {want}\n{ctx}",
            po.pages
        ));
    }
    if po.bit_rate != c.rate || po.ecm != c.ecm {
        return Err(format!(
            "peer negotiated {} bit/s ecm {}\n{ctx}",
            po.bit_rate, po.ecm
        ));
    }
    let spandsp_code = match c.compression {
        "mh" => 1,
        "mr" => 2,
        _ => 3,
    };
    if po.compression != spandsp_code {
        return Err(format!(
            "peer used compression {} not {}\n{ctx}",
            po.compression, c.compression
        ));
    }
    if !ours_stdout.contains(&format!("ecm={}", c.ecm))
        || !ours_stdout.contains(&format!("compression={}", c.compression))
    {
        return Err(format!("our statistics disagree\n{ctx}"));
    }
    Ok(format!(
        "{:?} {} page(s) ecm={} {} {} loss={}: ok, spandsp cpu {:?} wall {:?}",
        c.dir, pages, c.ecm, c.compression, c.rate, c.loss, po.cpu, po.wall
    ))
}

/// Without ECM a lossy path damages pages; the receiver must count it (bad rows) and answer by copy
/// quality. Every page received that differs from the page sent must be reported damaged: by SpanDSP's
/// bad rows when it receives, by the BadFaxLines of our TIFF when we do.
fn honest_damage(
    sent: &Path,
    received: &Path,
    c: &Case,
    po: &testkit::spandsp::PeerOutcome,
    ours_ok: bool,
    ctx: &str,
) -> Result<String, String> {
    let a = testkit::spandsp::tiff_pages(sent).map_err(|e| format!("{e:#}"))?;
    let b = match testkit::spandsp::tiff_pages(received) {
        Ok(b) => b,
        // Nothing kept (every page rejected): nothing claimed either.
        Err(_) if !ours_ok || po.code != 0 => return Ok(format!("{c:?}: no page kept")),
        Err(e) => return Err(format!("{e:#}\n{ctx}")),
    };
    let mut damaged = 0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let same = x.width == y.width && x.height == y.height && x.data == y.data;
        if same {
            continue;
        }
        damaged += 1;
        let reported = match c.dir {
            Dir::OursToSpandsp => po.bad_rows > 0,
            Dir::SpandspToOurs => y.bad_fax_lines.unwrap_or(0) > 0,
        };
        if !reported {
            return Err(format!(
                "page {} differs ({} of {} rows) and the receiver reports no damage\n{ctx}",
                i + 1,
                y.height,
                x.height
            ));
        }
    }
    Ok(format!(
        "{:?} ecm={} {} loss={} burst={}: {} of {} page(s) kept damaged and said so",
        c.dir,
        c.ecm,
        c.compression,
        c.loss,
        c.burst,
        damaged,
        b.len()
    ))
}

fn run_cases(cases: &[Case]) {
    let Some(peer) = faxpeer().unwrap() else {
        eprintln!("skipping: libspandsp-dev not found");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (one, three) = documents(tmp.path());
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let doc = if c.pages == 1 {
                    one.clone()
                } else {
                    three.clone()
                };
                let (peer, dir) = (peer.clone(), tmp.path().to_path_buf());
                s.spawn(move || run_case(&peer, &dir, &doc, c, n))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failed.push(e),
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// Issues 20 and 21 against SpanDSP: one piece of an ECM frame lost for good (the PPS after the PPR
/// counts one frame), burst loss both ways with and without ECM, a spoofed datagram far ahead from the
/// sender's own address during an ECM page, and a stray datagram before the caller.
#[test]
fn pages_survive_burst_loss_lost_pieces_and_spoofed_datagrams() {
    let mut cases = vec![
        Case {
            drop_frame: Some("20:2"),
            ..Case::new(Dir::SpandspToOurs, 1, true, "mmr", 14400)
        },
        Case {
            inject: Some("150:4217"),
            ..Case::new(Dir::SpandspToOurs, 1, true, "mmr", 14400)
        },
        Case {
            inject: Some("150:40000"),
            stray_first: true,
            ..Case::new(Dir::SpandspToOurs, 1, true, "mmr", 14400)
        },
    ];
    for dir in [Dir::OursToSpandsp, Dir::SpandspToOurs] {
        cases.push(Case {
            loss: 0.01,
            burst: 4,
            ..Case::new(dir, 3, true, "mmr", 14400)
        });
        cases.push(Case {
            loss: 0.01,
            burst: 4,
            lossy_pages: true,
            ..Case::new(dir, 1, false, "mh", 14400)
        });
    }
    run_cases(&cases);
}

#[test]
fn faxhub_and_spandsp_exchange_identical_pages() {
    let mut cases = Vec::new();
    for dir in [Dir::OursToSpandsp, Dir::SpandspToOurs] {
        cases.push(Case::new(dir, 1, true, "mmr", 14400));
        cases.push(Case::new(dir, 3, false, "mh", 14400));
        cases.push(Case::new(dir, 1, false, "mr", 9600));
        cases.push(Case::new(dir, 3, true, "mr", 9600));
        cases.push(Case {
            loss: 0.05,
            ..Case::new(dir, 3, true, "mmr", 14400)
        });
    }
    run_cases(&cases);
}
