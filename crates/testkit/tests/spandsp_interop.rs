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
    loss: f64,
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
    }
    let mut ours_cmd = Command::new(faxhub_bin().unwrap());
    ours_cmd.arg("t38");
    let (peer_mode, peer_file, sent) = match c.dir {
        Dir::OursToSpandsp => {
            ours_cmd.args(["send", "--remote", &theirs]);
            ("receive", received.clone(), doc.to_path_buf())
        }
        Dir::SpandspToOurs => {
            ours_cmd
                .args(["receive", "--remote", &theirs, "--wait", "30", "--out"])
                .arg(&received);
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
    if !ours_out.status.success() || po.code != 0 {
        return Err(format!("call failed: {ctx}"));
    }
    let pages = same_pages(&sent, &received).map_err(|e| format!("pages differ: {e:#}\n{ctx}"))?;
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

#[test]
fn faxhub_and_spandsp_exchange_identical_pages() {
    let Some(peer) = faxpeer().unwrap() else {
        eprintln!("skipping: libspandsp-dev not found");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (one, three) = documents(tmp.path());
    let mut cases = Vec::new();
    for dir in [Dir::OursToSpandsp, Dir::SpandspToOurs] {
        cases.push(Case {
            dir,
            pages: 1,
            ecm: true,
            compression: "mmr",
            rate: 14400,
            loss: 0.0,
        });
        cases.push(Case {
            dir,
            pages: 3,
            ecm: false,
            compression: "mh",
            rate: 14400,
            loss: 0.0,
        });
        cases.push(Case {
            dir,
            pages: 1,
            ecm: false,
            compression: "mr",
            rate: 9600,
            loss: 0.0,
        });
        cases.push(Case {
            dir,
            pages: 3,
            ecm: true,
            compression: "mr",
            rate: 9600,
            loss: 0.0,
        });
        cases.push(Case {
            dir,
            pages: 3,
            ecm: true,
            compression: "mmr",
            rate: 14400,
            loss: 0.05,
        });
    }
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
