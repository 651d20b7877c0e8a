//! The SpanDSP reference fax peer: `spandsp/faxpeer.c`, a fax terminal on libspandsp's `t38_terminal`
//! speaking UDPTL on a UDP socket, compiled here at test time (cached by source hash) and driven as a
//! process; plus the pixel-by-pixel comparison of TIFF files that interop tests assert with.

use anyhow::{Context, bail};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SOURCE: &str = include_str!("../spandsp/faxpeer.c");

/// Builds the peer (once per source version) and returns its path; `Ok(None)` when libspandsp-dev or a
/// C compiler is missing and `FAXHUB_SLOW_TESTS` is not set (the caller skips), an error when it is.
pub fn faxpeer() -> anyhow::Result<Option<PathBuf>> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    SOURCE.hash(&mut h);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/spandsp");
    let exe = dir.join(format!("faxpeer-{:016x}", h.finish()));
    if exe.exists() {
        return Ok(Some(exe));
    }
    let required = crate::gate::slow_tests();
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "spandsp", "libtiff-4"])
        .output();
    let flags = match flags {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ if required => bail!(
            "SpanDSP interop needs libspandsp-dev and libtiff-dev (pkg-config spandsp libtiff-4)"
        ),
        _ => return Ok(None),
    };
    std::fs::create_dir_all(&dir)?;
    // Tests running at once may each build it: every build has its own files, and the first to finish
    // puts the program in place (a rename over it is atomic, so nobody runs a half-written one).
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let src = dir.join(format!("faxpeer-{unique}.c"));
    std::fs::write(&src, SOURCE)?;
    let tmp = exe.with_extension(format!("partial-{unique}"));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .args(flags.split_whitespace())
        .output()
        .context("running the C compiler")?;
    let _ = std::fs::remove_file(&src);
    if !out.status.success() {
        bail!(
            "compiling faxpeer.c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &exe).context("putting the built faxpeer in place")?;
    Ok(Some(exe))
}

/// The RESULT line the peer prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerOutcome {
    /// SpanDSP's T.30 completion code (0 = OK).
    pub code: i32,
    pub text: String,
    pub pages: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    /// SpanDSP's T4_COMPRESSION_* (1 MH, 2 MR, 3 MMR).
    pub compression: u32,
    pub bad_rows: u32,
    pub cpu: Duration,
    pub wall: Duration,
    /// Datagrams and UDP octets the peer sent.
    pub tx_datagrams: u64,
    pub tx_octets: u64,
}

impl PeerOutcome {
    /// Parses `RESULT key=value ...`.
    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let rest = line
            .trim()
            .strip_prefix("RESULT ")
            .with_context(|| format!("not a RESULT line: {line:?}"))?;
        let mut o = PeerOutcome::default();
        let text_start = rest.find("text=\"").context("no text")?;
        let text_end = rest[text_start + 6..]
            .find('"')
            .context("unterminated text")?
            + text_start
            + 6;
        o.text = rest[text_start + 6..text_end].to_string();
        let fields = format!("{} {}", &rest[..text_start], &rest[text_end + 1..]);
        for kv in fields.split_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("bad field {kv:?}"))?;
            let n: i64 = v.parse().with_context(|| format!("bad number in {kv:?}"))?;
            match k {
                "code" => o.code = n as i32,
                "pages" => o.pages = n as u32,
                "bit_rate" => o.bit_rate = n as u32,
                "ecm" => o.ecm = n != 0,
                "compression" => o.compression = n as u32,
                "bad_rows" => o.bad_rows = n as u32,
                "cpu_ms" => o.cpu = Duration::from_millis(n as u64),
                "wall_ms" => o.wall = Duration::from_millis(n as u64),
                "tx_datagrams" => o.tx_datagrams = n as u64,
                "tx_octets" => o.tx_octets = n as u64,
                _ => {}
            }
        }
        Ok(o)
    }
}

/// A running peer.
#[derive(Debug)]
pub struct Peer {
    child: Child,
}

impl Peer {
    /// Starts `faxpeer send|receive` with `args` (`--local`, `--remote`, `--file` and options).
    pub fn start(exe: &Path, mode: &str, args: &[String]) -> anyhow::Result<Self> {
        let child = Command::new(exe)
            .arg(mode)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        Ok(Self { child })
    }

    /// Waits at most `limit` for the peer to end (killing it after) and returns its outcome and stderr.
    pub fn wait(mut self, limit: Duration) -> anyhow::Result<(PeerOutcome, String)> {
        let start = Instant::now();
        while self.child.try_wait()?.is_none() {
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the SpanDSP peer did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = stdout
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .with_context(|| format!("no RESULT from the peer; stderr: {stderr}"))?;
        Ok((PeerOutcome::parse(line)?, stderr))
    }
}

/// Pages of a TIFF file, decoded.
pub fn tiff_pages(path: &Path) -> anyhow::Result<Vec<t4::tiff::TiffPage>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    t4::tiff::read(&bytes, &t4::tiff::ReadLimits::default())
        .with_context(|| format!("decoding {}", path.display()))
}

/// Compares two TIFF files page by page, pixel by pixel; the error names the first difference.
pub fn same_pages(sent: &Path, received: &Path) -> anyhow::Result<usize> {
    let a = tiff_pages(sent)?;
    let b = tiff_pages(received)?;
    if a.len() != b.len() {
        bail!("{} pages sent, {} received", a.len(), b.len());
    }
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let (p, q) = (x.as_page(), y.as_page());
        if (p.width, p.height) != (q.width, q.height) {
            bail!(
                "page {}: {}x{} sent, {}x{} received",
                i + 1,
                p.width,
                p.height,
                q.width,
                q.height
            );
        }
        let stride = t4::stride(p.width);
        for row in 0..p.height as usize {
            let r = row * stride..(row + 1) * stride;
            if p.data[r.clone()] != q.data[r] {
                bail!("page {}: row {row} differs", i + 1);
            }
        }
    }
    Ok(a.len())
}

/// A free UDP port on 127.0.0.1 (bound and released; fine for tests on loopback).
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
