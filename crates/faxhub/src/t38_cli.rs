//! `faxhub t38 send` and `faxhub t38 receive`: a fax over T.38 UDPTL straight between two UDP addresses,
//! with no SIP, for operators checking a T.38 path or a peer. Prints the outcome and the call's
//! statistics; exits non-zero when the fax failed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::imaging_cli::{RenderArgs, load, load_options, spec};

#[derive(Debug, Subcommand)]
pub enum T38Command {
    /// Send documents as a fax (we are the calling terminal).
    Send(SendArgs),
    /// Wait for a caller and receive its fax into a TIFF Class F file (we are the called terminal).
    Receive(ReceiveArgs),
}

/// What both directions share.
#[derive(Debug, Clone, Args)]
pub struct LineArgs {
    /// Local UDP address to bind.
    #[arg(long)]
    local: SocketAddr,
    /// Use error correction mode (ECM).
    #[arg(long, overrides_with = "no_ecm")]
    ecm: bool,
    /// Do not use ECM.
    #[arg(long)]
    no_ecm: bool,
    /// Highest image bit rate.
    #[arg(long, default_value_t = 14400)]
    max_rate: u32,
    /// Codings offered or used besides MH (mh, mr, mmr; MMR needs ECM).
    #[arg(long, value_delimiter = ',', default_value = "mh,mr,mmr")]
    compressions: Vec<String>,
    /// Our station identity (TSI / CSI).
    #[arg(long, default_value = "")]
    ident: String,
    /// UDPTL redundancy depth.
    #[arg(long, default_value_t = 3)]
    redundancy: usize,
    /// The far end's T38FaxMaxDatagram.
    #[arg(long, default_value_t = 400)]
    max_datagram: usize,
    /// T38FaxVersion (0 to 3).
    #[arg(long, default_value_t = 0)]
    t38_version: u8,
    /// Send without real-time pacing (between two terminals only; gateways need pacing).
    #[arg(long)]
    unpaced: bool,
    /// ECM frame size (256 or 64 octets).
    #[arg(long, default_value_t = 256)]
    ecm_frame: usize,
    /// Drop this share of outgoing datagrams on purpose (0 to 1), to check that the redundancy copes.
    #[arg(long, default_value_t = 0.0)]
    simulate_loss: f64,
    /// Seed of --simulate-loss.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Each simulated loss takes this many datagrams in a row (a burst).
    #[arg(long, default_value_t = 1)]
    simulate_burst: u32,
    /// Sending: the password given to the receiver (SID); receiving: the password a sender must give.
    #[arg(
        long,
        env = "FAXHUB_T38_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    line: LineArgs,
    /// The far end's UDP address.
    #[arg(long)]
    remote: SocketAddr,
    /// A subaddress for the receiver's routing (SUB).
    #[arg(long, default_value = "")]
    sub_address: String,
    /// Documents to send (TIFF, PDF, images, text).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    render: RenderArgs,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    #[command(flatten)]
    line: LineArgs,
    /// The far end's UDP address; by default the source of the first datagram.
    #[arg(long)]
    remote: Option<SocketAddr>,
    /// The TIFF Class F file to write (MMR).
    #[arg(long)]
    out: PathBuf,
    /// Seconds to wait for a caller.
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

fn config(
    role: t30::Role,
    calling: bool,
    a: &LineArgs,
) -> anyhow::Result<(t30::Config, line::Transport)> {
    if ![14400, 12000, 9600, 7200, 4800, 2400].contains(&a.max_rate) {
        bail!(
            "--max-rate {} is not a fax rate (14400, 12000, 9600, 7200, 4800 or 2400)",
            a.max_rate
        );
    }
    let mut c = t30::Config::new(role, calling);
    c.ident = a.ident.clone();
    c.max_rate = a.max_rate;
    c.ecm = !a.no_ecm;
    c.mr = false;
    c.mmr = false;
    for name in &a.compressions {
        match name.trim() {
            "mh" => {}
            "mr" => c.mr = true,
            "mmr" => c.mmr = true,
            other => bail!("--compressions: unknown coding {other:?} (use mh, mr, mmr)"),
        }
    }
    if a.ecm_frame != 256 && a.ecm_frame != 64 {
        bail!("--ecm-frame must be 256 or 64, not {}", a.ecm_frame);
    }
    c.ecm_frame = a.ecm_frame;
    c.password = a.password.clone();
    c.pacing.paced = !a.unpaced;
    let version = t38::T38Version::from_number(a.t38_version).context("--t38-version")?;
    if a.max_datagram < 100 {
        bail!(
            "--max-datagram {} is too small for T.38 (at least 100)",
            a.max_datagram
        );
    }
    if !(0.0..=1.0).contains(&a.simulate_loss) {
        bail!(
            "--simulate-loss must be between 0 and 1, not {}",
            a.simulate_loss
        );
    }
    let transport = line::Transport {
        version,
        loss: a.simulate_loss,
        loss_seed: a.seed,
        loss_burst: a.simulate_burst.max(1),
        redundancy: a.redundancy,
        max_datagram: a.max_datagram,
        ..line::Transport::default()
    };
    Ok((c, transport))
}

fn print_result(r: &line::CallResult) {
    let s = &r.stats;
    match &r.outcome.result {
        Ok(()) => println!("result: ok"),
        Err(f) => println!("result: failed: {f}"),
    }
    println!("detail: {}", r.outcome.detail);
    println!(
        "pages={} bit_rate={} ecm={} compression={} resolution={} bad_lines={} retransmitted_frames={} pprs={} \
         duration_ms={} datagrams_sent={} octets_sent={} datagrams_received={} ifps_recovered={} ifps_lost={} \
         remote_ident={:?} sub_address={:?}",
        s.pages,
        s.bit_rate,
        s.ecm,
        s.compression.map_or("-", |c| c.name()),
        s.resolution
            .map_or("-".to_string(), |r| format!("{r:?}").to_lowercase()),
        s.bad_lines,
        s.retransmitted_frames,
        s.pprs,
        s.duration.as_millis(),
        s.datagrams_sent,
        s.octets_sent,
        s.datagrams_received,
        s.ifps_recovered,
        s.ifps_lost,
        s.remote_ident,
        r.outcome.stats.sub_address,
    );
}

fn pages(a: &SendArgs) -> anyhow::Result<Vec<t30::Page>> {
    let options = load_options(&a.render);
    let docs = a
        .inputs
        .iter()
        .map(|p| load(p, &options))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let o = render::FaxOptions {
        spec: spec(&a.render),
        ..render::FaxOptions::default()
    };
    Ok(node::pages::fax_pages(&docs, &o)?)
}

pub async fn run(cmd: T38Command) -> anyhow::Result<()> {
    match cmd {
        T38Command::Send(a) => {
            let pages = {
                let a2 = a.clone();
                tokio::task::spawn_blocking(move || pages(&a2)).await??
            };
            let (mut cfg, transport) = config(t30::Role::Send(pages), true, &a.line)?;
            cfg.sub_address = a.sub_address.clone();
            let socket = tokio::net::UdpSocket::bind(a.line.local)
                .await
                .with_context(|| format!("binding {}", a.line.local))?;
            let r = line::run(
                &socket,
                Some(a.remote),
                cfg,
                transport,
                Duration::ZERO,
                |e| {
                    if let t30::Event::PageSent { index } = e {
                        eprintln!("page {} confirmed", index + 1);
                    }
                },
            )
            .await?;
            print_result(&r);
            if let Err(f) = &r.outcome.result {
                bail!("fax not sent: {f}");
            }
            Ok(())
        }
        T38Command::Receive(a) => {
            let (cfg, transport) = config(t30::Role::Receive, false, &a.line)?;
            let socket = tokio::net::UdpSocket::bind(a.line.local)
                .await
                .with_context(|| format!("binding {}", a.line.local))?;
            let r = line::run(
                &socket,
                a.remote,
                cfg,
                transport,
                Duration::from_secs(a.wait),
                |e| {
                    if let t30::Event::PageReceived(p) = e {
                        eprintln!(
                            "page received: {} x {} ({} bad lines, {} lines lost{}){}",
                            p.page.width,
                            p.page.height,
                            p.bad_lines,
                            p.lines_lost,
                            if p.complete { "" } else { ", no end of page" },
                            if p.confirmed {
                                ""
                            } else {
                                " NOT CONFIRMED: kept for the record"
                            }
                        );
                    }
                },
            )
            .await?;
            if !r.pages.is_empty() {
                write_tiff(&a.out, &r.pages)?;
            }
            print_result(&r);
            if let Err(f) = &r.outcome.result {
                bail!(
                    "fax not received completely: {f} ({} page(s) kept)",
                    r.pages.len()
                );
            }
            Ok(())
        }
    }
}

/// Writes received pages as TIFF Class F (MMR), through a temporary file renamed into place.
pub fn write_tiff(path: &std::path::Path, pages: &[t30::ReceivedPage]) -> anyhow::Result<()> {
    let bytes = line::received_tiff(pages, concat!("faxhub ", env!("CARGO_PKG_VERSION")))
        .context("coding the received pages")?;
    let tmp = path.with_extension("tif.partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
