//! Imaging benchmarks side by side with the reference tools, on the same input, as whole processes (both
//! sides pay their start-up and their file I/O). Prints medians, pages per second, peak memory and ratios;
//! the commands compared run in turn, round by round, so a busy moment on the machine falls on all alike.
//!
//!   faxhub-bench-imaging codecs [--runs 7]   MH / MR / MMR encode and decode of the 50-page fine document
//!                                            (crates/t4/benches/document.ps): `faxhub convert` against
//!                                            libtiff's `tiffcp`.
//!   faxhub-bench-imaging pdf [--runs 7]      the 20-page text-and-graphics PDF (crates/render/benches/data)
//!                                            to G4 TIFF-F at 204x196: `faxhub convert` against
//!                                            `gs -sDEVICE=tiffg4 -r204x196`.
//!
//! `faxhub` is the binary beside this one (scripts/bench.sh builds both in release).
#![allow(unsafe_code)] // one wait4(2) call, for the child's peak memory

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Run {
    wall: Duration,
    peak_kib: u64,
}

/// Runs a command to completion, measuring its wall time and peak resident memory.
fn measure(cmd: &mut Command) -> anyhow::Result<Run> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes; the pid is our own child, reaped exactly once here.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if r != pid {
        bail!("wait4 on {cmd:?}: {}", std::io::Error::last_os_error());
    }
    let exit = std::process::ExitStatus::from_raw(status);
    if !exit.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?} failed ({exit}): {err}");
    }
    Ok(Run {
        wall,
        peak_kib: usage.ru_maxrss as u64,
    })
}

fn median(mut v: Vec<Run>) -> Run {
    v.sort_by_key(|r| r.wall);
    let peak = v.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    let mid = v.swap_remove(v.len() / 2);
    Run {
        wall: mid.wall,
        peak_kib: peak,
    }
}

/// Runs every command `n` times, round by round (one run of each in turn), so that a busy moment on the
/// machine falls on all of them alike; the median of each.
fn interleaved(n: usize, cmds: &mut [&mut dyn FnMut() -> Command]) -> anyhow::Result<Vec<Run>> {
    // One unmeasured round warms the page cache for every side alike.
    for make in cmds.iter_mut() {
        measure(&mut make())?;
    }
    let mut runs: Vec<Vec<Run>> = cmds.iter().map(|_| Vec::with_capacity(n)).collect();
    for _ in 0..n {
        for (make, r) in cmds.iter_mut().zip(&mut runs) {
            r.push(measure(&mut make())?);
        }
    }
    Ok(runs.into_iter().map(median).collect())
}

fn tool(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{cmd:?} (install ghostscript and libtiff-tools)"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn faxhub() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let f = me.with_file_name("faxhub");
    if !f.exists() {
        bail!(
            "{} is missing: build it (scripts/bench.sh does)",
            f.display()
        );
    }
    Ok(f)
}

fn row(what: &str, pages: usize, peer_name: &str, peer: &Run, ours: &Run) {
    let pps = |r: &Run| pages as f64 / r.wall.as_secs_f64();
    println!(
        "{what:<22} {peer_name} {:>8.1} ms {:>7.0} p/s {:>7} KiB | faxhub {:>8.1} ms {:>7.0} p/s {:>7} KiB | {:>5.2}x",
        peer.wall.as_secs_f64() * 1e3,
        pps(peer),
        peer.peak_kib,
        ours.wall.as_secs_f64() * 1e3,
        pps(ours),
        ours.peak_kib,
        peer.wall.as_secs_f64() / ours.wall.as_secs_f64(),
    );
}

/// Our side runs on one thread (as tiffcp and gs do) and on two (the default on these 2-core machines).
const THREADS: [usize; 2] = [1, 2];

/// Measures the peer's command and `ours(threads)` for each of [`THREADS`], interleaved, and prints a row
/// per thread count against the peer.
fn compare(
    runs: usize,
    what: &str,
    pages: usize,
    peer_name: &str,
    peer: &mut dyn FnMut() -> Command,
    ours: impl Fn(usize) -> Command,
) -> anyhow::Result<()> {
    let (mut one, mut two) = (|| ours(THREADS[0]), || ours(THREADS[1]));
    let mut measured = interleaved(runs, &mut [peer, &mut one, &mut two])?.into_iter();
    let peer = measured.next().context("the peer was measured")?;
    for (threads, mine) in THREADS.iter().zip(measured) {
        row(
            &format!("{what} {threads}t"),
            pages,
            peer_name,
            &peer,
            &mine,
        );
    }
    Ok(())
}

/// `faxhub convert --threads T --compression C INPUT -o OUT`.
fn convert(fax: &Path, threads: usize, compression: &str, input: &Path, out: &Path) -> Command {
    let mut c = Command::new(fax);
    c.args(["convert", "--compression", compression, "--threads"])
        .arg(threads.to_string())
        .arg(input)
        .arg("-o")
        .arg(out);
    c
}

/// `gs` rendering `input` to G4 TIFF at 204 × 196 into `out`, with `extra` options (which ghostscript
/// applies only to files named after them, so they go first).
fn gs_g4(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("gs");
    c.args([
        "-q",
        "-dNOPAUSE",
        "-dBATCH",
        "-dSAFER",
        "-sDEVICE=tiffg4",
        "-r204x196",
    ])
    .args(extra)
    .arg(format!("-sOutputFile={}", out.display()))
    .arg(input);
    c
}

fn codecs(runs: usize, dir: &Path) -> anyhow::Result<()> {
    let fax = faxhub()?;
    let g4 = dir.join("gs.tif");
    tool(&mut gs_g4(
        &root().join("crates/t4/benches/document.ps"),
        &g4,
        &["-g1728x2292"],
    ))?;
    let none = dir.join("none.tif");
    tool(
        Command::new("tiffcp")
            .args(["-c", "none"])
            .arg(&g4)
            .arg(&none),
    )?;
    let codings = [
        ("mh", "g3:1d:fill", "mh"),
        ("mr", "g3:2d:fill", "mr"),
        ("mmr", "g4", "mmr"),
    ];
    println!(
        "50 fine pages (1728 x 2292), median of {runs} runs, whole processes; faxhub on 1 and 2 threads (t)"
    );
    for (name, libtiff, ours) in codings {
        let coded = dir.join(format!("{name}.tif"));
        tool(
            Command::new("tiffcp")
                .args(["-c", libtiff])
                .arg(&none)
                .arg(&coded),
        )?;
        let out = dir.join("out.tif");
        compare(
            runs,
            &format!("encode {name}"),
            50,
            "tiffcp",
            &mut || {
                let mut c = Command::new("tiffcp");
                c.args(["-c", libtiff]).arg(&none).arg(&out);
                c
            },
            |threads| convert(&fax, threads, ours, &none, &out),
        )?;
        compare(
            runs,
            &format!("decode {name}"),
            50,
            "tiffcp",
            &mut || {
                let mut c = Command::new("tiffcp");
                c.args(["-c", "none"]).arg(&coded).arg(&out);
                c
            },
            |threads| convert(&fax, threads, "none", &coded, &out),
        )?;
    }
    Ok(())
}

fn pdf(runs: usize, dir: &Path) -> anyhow::Result<()> {
    let fax = faxhub()?;
    let input = root().join("crates/render/benches/data/bench20.pdf");
    let out = dir.join("out.tif");
    println!(
        "20-page text-and-graphics PDF to G4 TIFF-F at 204 x 196, median of {runs} runs, whole processes; faxhub on 1 and 2 threads (t)"
    );
    compare(
        runs,
        "pdf->g4",
        20,
        "gs    ",
        &mut || gs_g4(&input, &out, &[]),
        |threads| convert(&fax, threads, "mmr", &input, &out),
    )?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let mut runs = 7usize;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs")?
            }
            other => bail!("unknown option {other}"),
        }
    }
    let runs = runs.clamp(1, 100);
    // Inputs and outputs in memory (tmpfs) when the machine has it: the comparison is then of the coders,
    // not of the disk's write-back of 25 MB outputs, which lands on whichever run comes next.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    match what.as_str() {
        "codecs" => codecs(runs, dir.path()),
        "pdf" => pdf(runs, dir.path()),
        _ => bail!("usage: faxhub-bench-imaging codecs|pdf [--runs N]"),
    }
}
