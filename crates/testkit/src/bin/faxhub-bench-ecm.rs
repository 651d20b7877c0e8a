//! ECM recovery as sender under loss, side by side with SpanDSP: a 3-page fax of dense fine A4 pages
//! (MMR, 14,400 bit/s, redundancy 3), sent by faxhub and by the SpanDSP peer to a SpanDSP receiver, with
//! the same random loss on both directions, paced in real time on loopback.
//!
//!   faxhub-bench-ecm [--loss 0,0.05] [--seeds 5] [--burst 1]
//!
//! For each loss level and seed both pairs run at once (faxhub → SpanDSP and SpanDSP → SpanDSP); the
//! table gives, per sender, the calls that succeeded, the median call time, and the median datagrams and
//! UDP octets the sender sent, with faxhub's PPRs. Every call is bounded by T.30's timers and a wall
//! limit; the pages SpanDSP received are compared with the pages sent.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::spandsp::{Peer, faxpeer, free_udp_port, same_pages};

struct Args {
    losses: Vec<f64>,
    seeds: u64,
    burst: u32,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        losses: vec![0.0, 0.05],
        seeds: 5,
        burst: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--loss" => {
                a.losses = v
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--loss takes shares such as 0,0.05")?;
            }
            "--seeds" => a.seeds = v.parse().context("--seeds")?,
            "--burst" => a.burst = v.parse().context("--burst")?,
            _ => bail!("unknown option {k}"),
        }
    }
    Ok(a)
}

/// Three dense fine A4 pages of text, coded MH (the senders recode them as they negotiate).
fn document(fax: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut inputs = Vec::new();
    for p in 1..=3 {
        let t = dir.join(format!("dense{p}.txt"));
        // 60 lines of 78 characters: a full page of monospaced text.
        let body: String = (0..60)
            .map(|l| {
                let line = format!(
                    "{p}.{l:02} {:05} The quick brown fox jumps over the lazy dog; PACK MY BOX WITH FIVE DOZEN",
                    l * 7919 % 10007
                );
                format!("{}\n", &line[..78])
            })
            .collect();
        std::fs::write(&t, body)?;
        inputs.push(t);
    }
    let out = dir.join("dense.tif");
    let st = Command::new(fax)
        .arg("convert")
        .args(&inputs)
        .arg("-o")
        .arg(&out)
        .args(["--compression", "mh", "--resolution", "fine"])
        .status()
        .with_context(|| format!("running {}", fax.display()))?;
    if !st.success() {
        bail!("faxhub convert failed");
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
struct Run {
    ok: bool,
    wall: Duration,
    datagrams: u64,
    octets: u64,
    pprs: u64,
}

fn field(out: &str, key: &str) -> Option<u64> {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// One call to a SpanDSP receiver; `ours` picks the sender.
#[allow(clippy::too_many_arguments)] // one call of the benchmark, every knob named at the call site
fn call(
    fax: &Path,
    peer: &Path,
    dir: &Path,
    doc: &Path,
    ours: bool,
    loss: f64,
    burst: u32,
    seed: u64,
) -> anyhow::Result<Run> {
    let (p_tx, p_rx) = (free_udp_port()?, free_udp_port()?);
    let tx = format!("127.0.0.1:{p_tx}");
    let rx = format!("127.0.0.1:{p_rx}");
    let received = dir.join(format!(
        "rx-{}-{loss}-{seed}.tif",
        if ours { "faxhub" } else { "spandsp" }
    ));
    let common = |loss_flag: &str| -> Vec<String> {
        let mut v: Vec<String> = vec!["--redundancy".into(), "3".into()];
        if loss > 0.0 {
            v.extend([loss_flag.into(), loss.to_string()]);
        }
        v
    };
    let mut rx_args: Vec<String> = vec![
        "--local".into(),
        rx.clone(),
        "--remote".into(),
        tx.clone(),
        "--file".into(),
        received.display().to_string(),
        "--ecm".into(),
        "--timeout".into(),
        "600".into(),
        "--seed".into(),
        (seed * 2 + 1).to_string(),
        "--burst".into(),
        burst.to_string(),
    ];
    rx_args.extend(common("--loss"));
    let receiver = Peer::start(peer, "receive", &rx_args)?;
    std::thread::sleep(Duration::from_millis(200));
    let start = std::time::Instant::now();
    let run = if ours {
        let mut c = Command::new(fax);
        c.args(["t38", "send", "--local", &tx, "--remote", &rx, "--ecm"])
            .args(["--seed", &(seed * 2 + 2).to_string()])
            .args(["--simulate-burst", &burst.to_string()])
            .args(common("--simulate-loss"))
            .arg(doc)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let out = c.output().context("running faxhub t38 send")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Run {
            ok: out.status.success(),
            wall: start.elapsed(),
            datagrams: field(&text, "datagrams_sent").unwrap_or(0),
            octets: field(&text, "octets_sent").unwrap_or(0),
            pprs: field(&text, "pprs").unwrap_or(0),
        }
    } else {
        let mut tx_args: Vec<String> = vec![
            "--local".into(),
            tx.clone(),
            "--remote".into(),
            rx.clone(),
            "--file".into(),
            doc.display().to_string(),
            "--ecm".into(),
            "--timeout".into(),
            "600".into(),
            "--seed".into(),
            (seed * 2 + 2).to_string(),
            "--burst".into(),
            burst.to_string(),
        ];
        tx_args.extend(common("--loss"));
        let (po, _) = Peer::start(peer, "send", &tx_args)?.wait(Duration::from_secs(660))?;
        Run {
            ok: po.code == 0,
            wall: start.elapsed(),
            datagrams: po.tx_datagrams,
            octets: po.tx_octets,
            pprs: 0,
        }
    };
    let (po, _) = receiver.wait(Duration::from_secs(60))?;
    let intact = same_pages(doc, &received).is_ok_and(|n| n == 3);
    Ok(Run {
        ok: run.ok && po.code == 0 && intact,
        ..run
    })
}

fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let me = std::env::current_exe()?;
    let fax = me.with_file_name("faxhub");
    let peer = faxpeer()?.context("the SpanDSP peer needs libspandsp-dev and libtiff-dev")?;
    let tmp = tempfile::tempdir()?;
    let doc = document(&fax, tmp.path())?;
    println!(
        "3 dense fine A4 pages, ECM MMR 14,400 bit/s, redundancy 3, to a SpanDSP receiver; {} seed(s) a row; loss each way in bursts of {}",
        a.seeds, a.burst
    );
    println!(
        "{:>6} {:>8} {:>6} {:>9} {:>10} {:>11} {:>5}",
        "loss", "sender", "ok", "median s", "datagrams", "octets", "PPRs"
    );
    for &loss in &a.losses {
        let runs: Vec<(bool, anyhow::Result<Run>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..a.seeds)
                .flat_map(|seed| [(true, seed), (false, seed)])
                .map(|(ours, seed)| {
                    let (fax, peer, dir, doc) = (&fax, &peer, tmp.path(), &doc);
                    s.spawn(move || (ours, call(fax, peer, dir, doc, ours, loss, a.burst, seed)))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for ours in [true, false] {
            let mine: Vec<Run> = runs
                .iter()
                .filter(|(o, _)| *o == ours)
                .filter_map(|(_, r)| match r {
                    Ok(r) => Some(r.clone()),
                    Err(e) => {
                        eprintln!("a call could not run: {e:#}");
                        None
                    }
                })
                .collect();
            let ok: Vec<&Run> = mine.iter().filter(|r| r.ok).collect();
            println!(
                "{:>6} {:>8} {:>3}/{:<2} {:>9.1} {:>10} {:>11} {:>5}",
                loss,
                if ours { "faxhub" } else { "spandsp" },
                ok.len(),
                mine.len(),
                median(ok.iter().map(|r| r.wall.as_millis() as u64).collect()) as f64 / 1000.0,
                median(ok.iter().map(|r| r.datagrams).collect()),
                median(ok.iter().map(|r| r.octets).collect()),
                if ours {
                    median(ok.iter().map(|r| r.pprs).collect()).to_string()
                } else {
                    "-".into()
                },
            );
        }
    }
    Ok(())
}
