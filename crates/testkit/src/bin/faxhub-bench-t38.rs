//! Concurrent T.38 fax sessions between two processes on loopback, paced in real time, 14400 bit/s, ECM,
//! a 3-page fax each, side by side with the SpanDSP peer pair on the same document.
//!
//!   faxhub-bench-t38 [--sessions 100,250,500] [--spandsp-pairs 4]
//!
//! For each N: a receiving process and a sending process each run N sessions at once (our `line` crate
//! on its own UDP socket per session); prints failed sessions, the CPU both processes used (user +
//! system, from wait4) as a share of the machine's cores over the wall time, and CPU-seconds per page.
//! Then the SpanDSP pairs (`spandsp/faxpeer.c`) fax the same document and their CPU per page is printed
//! next to ours. Loopback only; every session is bounded by its T.30 timers.
#![allow(unsafe_code)] // wait4(2), for the children's CPU time

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Usage {
    cpu: Duration,
    wall: Duration,
    stdout: String,
}

fn wait_child(child: std::process::Child, start: Instant) -> anyhow::Result<Usage> {
    use std::io::Read;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut stdout = String::new();
    let mut child = child;
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout)?;
    }
    // SAFETY: valid out-pointers; the pid is our own child, reaped once here.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        wall: start.elapsed(),
        stdout,
    })
}

fn document(dir: &Path) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let fax = me.with_file_name("faxhub");
    let mut inputs = Vec::new();
    for i in 1..=3 {
        let t = dir.join(format!("p{i}.txt"));
        let body: String = (0..50)
            .map(|l| {
                format!(
                    "Benchmark page {i}, line {l}: the quick brown fox jumps over the lazy dog.\n"
                )
            })
            .collect();
        std::fs::write(&t, body)?;
        inputs.push(t);
    }
    let out = dir.join("doc.tif");
    let st = Command::new(&fax)
        .arg("convert")
        .args(&inputs)
        .arg("-o")
        .arg(&out)
        .args(["--compression", "mh"])
        .status()
        .with_context(|| format!("running {}", fax.display()))?;
    if !st.success() {
        bail!("faxhub convert failed");
    }
    Ok(out)
}

fn pages(doc: &Path) -> anyhow::Result<Vec<t30::Page>> {
    let bytes = std::fs::read(doc)?;
    let pages = t4::tiff::read(&bytes, &t4::tiff::ReadLimits::default())?;
    pages
        .iter()
        .map(|p| {
            let r = t30::Resolution::from_dpi(p.y_dpi().unwrap_or(196.0)).context("resolution")?;
            let pr = p.as_page();
            Ok(t30::Page {
                width: pr.width,
                height: pr.height,
                resolution: r,
                data: pr.data.to_vec(),
            })
        })
        .collect()
}

/// A worker process: N sessions at once, one direction.
async fn worker(
    mode: &str,
    n: usize,
    base: u16,
    remote_base: u16,
    doc: Option<PathBuf>,
) -> anyhow::Result<()> {
    let doc_pages = match &doc {
        Some(d) => Some(pages(d)?),
        None => None,
    };
    let mut tasks = Vec::new();
    for i in 0..n {
        let local: SocketAddr = format!("127.0.0.1:{}", base as usize + i).parse()?;
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .with_context(|| format!("binding {local}"))?;
        let role = match &doc_pages {
            Some(p) => t30::Role::Send(p.clone()),
            None => t30::Role::Receive,
        };
        let calling = mode == "send";
        let remote: Option<SocketAddr> = if calling {
            Some(format!("127.0.0.1:{}", remote_base as usize + i).parse()?)
        } else {
            None
        };
        tasks.push(tokio::spawn(async move {
            let mut cfg = t30::Config::new(role, calling);
            cfg.ecm = true;
            cfg.max_rate = 14400;
            let r = line::run(
                &socket,
                remote,
                cfg,
                line::Transport::default(),
                Duration::from_secs(120),
                |_| {},
            )
            .await;
            match r {
                Ok(r) if r.outcome.result.is_ok() => (true, r.stats.pages),
                _ => (false, 0),
            }
        }));
    }
    let (mut ok, mut pages_done) = (0, 0);
    for t in tasks {
        let (good, p) = t.await?;
        ok += usize::from(good);
        pages_done += p;
    }
    println!("{ok} {} {pages_done}", n - ok);
    Ok(())
}

fn ours(n: usize, doc: &Path) -> anyhow::Result<(usize, u32, Duration, Duration)> {
    let me = std::env::current_exe()?;
    let start = Instant::now();
    let rx = Command::new(&me)
        .args(["worker", "receive", &n.to_string(), "20000", "0"])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let tx = Command::new(&me)
        .args(["worker", "send", &n.to_string(), "40000", "20000"])
        .arg(doc)
        .stdout(Stdio::piped())
        .spawn()?;
    let t = wait_child(tx, start)?;
    let r = wait_child(rx, start)?;
    let parse = |s: &str| -> (usize, usize, u32) {
        let v: Vec<u64> = s
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (
            v.first().copied().unwrap_or(0) as usize,
            v.get(1).copied().unwrap_or(n as u64) as usize,
            v.get(2).copied().unwrap_or(0) as u32,
        )
    };
    let (_, tfail, tpages) = parse(&t.stdout);
    let (_, rfail, _) = parse(&r.stdout);
    Ok((tfail.max(rfail), tpages, t.cpu + r.cpu, t.wall.max(r.wall)))
}

fn spandsp(pairs: usize, doc: &Path) -> anyhow::Result<Option<(Duration, u32)>> {
    let Some(peer) = testkit::spandsp::faxpeer()? else {
        return Ok(None);
    };
    let dir = doc.parent().context("doc dir")?;
    let mut children = Vec::new();
    let start = Instant::now();
    for i in 0..pairs {
        let (a, b) = (45000 + 2 * i, 45001 + 2 * i);
        let rx = Command::new(&peer)
            .args([
                "receive",
                "--local",
                &format!("127.0.0.1:{a}"),
                "--remote",
                &format!("127.0.0.1:{b}"),
                "--ecm",
                "--file",
            ])
            .arg(dir.join(format!("sp{i}.tif")))
            .stdout(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(100));
        let tx = Command::new(&peer)
            .args([
                "send",
                "--local",
                &format!("127.0.0.1:{b}"),
                "--remote",
                &format!("127.0.0.1:{a}"),
                "--ecm",
                "--file",
            ])
            .arg(doc)
            .stdout(Stdio::piped())
            .spawn()?;
        children.push(rx);
        children.push(tx);
    }
    let mut cpu = Duration::ZERO;
    let mut pages = 0;
    for c in children {
        let u = wait_child(c, start)?;
        cpu += u.cpu;
        if let Some(line) = u.stdout.lines().find(|l| l.starts_with("RESULT")) {
            let o = testkit::spandsp::PeerOutcome::parse(line)?;
            if o.code != 0 {
                bail!("SpanDSP pair failed: {}", o.text);
            }
            pages += o.pages;
        }
    }
    // Each page is counted by its sender and its receiver.
    Ok(Some((cpu, pages / 2)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let n: usize = args.get(2).context("n")?.parse()?;
        let base: u16 = args.get(3).context("base")?.parse()?;
        let remote: u16 = args.get(4).context("remote")?.parse()?;
        return worker(&args[1], n, base, remote, args.get(5).map(PathBuf::from)).await;
    }
    let mut sessions = vec![100usize, 250, 500];
    let mut pairs = 4usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sessions" => {
                sessions = it
                    .next()
                    .context("--sessions N,N")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--spandsp-pairs" => pairs = it.next().context("--spandsp-pairs N")?.parse()?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let doc = document(tmp.path())?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let sp = spandsp(pairs, &doc)?;
    let sp_per_page = sp.map(|(cpu, pages)| cpu.as_secs_f64() / f64::from(pages.max(1)));
    if let (Some((cpu, pages)), Some(pp)) = (sp, sp_per_page) {
        println!(
            "spandsp: {pairs} pair(s), {pages} pages, {:.3} CPU-s, {:.5} CPU-s/page",
            cpu.as_secs_f64(),
            pp
        );
    }
    for n in sessions {
        let (failed, pages, cpu, wall) = ours(n, &doc)?;
        let share = cpu.as_secs_f64() / wall.as_secs_f64() / cores * 100.0;
        let per_page = cpu.as_secs_f64() / f64::from(pages.max(1));
        println!(
            "faxhub: {n} sessions, {failed} failed, {pages} pages, wall {:.1} s, CPU {:.2} s = {share:.1}% of {cores} cores, {per_page:.5} CPU-s/page{}",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            sp_per_page.map_or(String::new(), |sp| format!(
                " ({:.2}x SpanDSP's)",
                per_page / sp
            )),
        );
    }
    Ok(())
}
