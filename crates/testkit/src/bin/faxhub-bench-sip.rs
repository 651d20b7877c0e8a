//! SIP signalling through Kamailio: calls set up and torn down per second (no media).
//!
//!   faxhub-bench-sip [--pairs 20] [--calls 4000] [--transport udp|tcp]
//!
//! Starts Kamailio on 127.0.0.1 as registrar and proxy with digest authentication (every INVITE is
//! challenged and answered, as on a real trunk), registers `pairs` callers and `pairs` callees (our `sip`
//! user agents in this process), then each caller places its share of `calls` one after another: INVITE
//! with a T.38 offer, 407, INVITE with credentials, 100, 200 with the callee's T.38 answer, ACK, then BYE
//! and its 200. Prints calls per second, setup (INVITE to 200) and teardown (BYE to 200) latency
//! percentiles, failed calls, and the CPU this process used per call. The total is bounded by `--calls`.
#![allow(unsafe_code)] // getrusage(2), for this process's CPU time

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::sdp::{self, T38Params};
use sip::ua::{Account, CallEvent, Config, Transport, UserAgent};
use testkit::kamailio::Kamailio;

struct Args {
    pairs: usize,
    calls: usize,
    transport: Transport,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        pairs: 20,
        calls: 4000,
        transport: Transport::Udp,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--pairs" => a.pairs = v()?.parse().context("--pairs")?,
            "--calls" => a.calls = v()?.parse().context("--calls")?,
            "--transport" => a.transport = v()?.parse().map_err(anyhow::Error::msg)?,
            other => bail!("unknown argument {other} (see the top of faxhub-bench-sip.rs)"),
        }
    }
    if a.pairs == 0 || a.calls == 0 {
        bail!("--pairs and --calls must be at least 1");
    }
    Ok(a)
}

fn cpu_self() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: a valid out-pointer for getrusage(2).
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn agent(
    k: &Kamailio,
    user: &str,
    transport: Transport,
) -> anyhow::Result<(
    UserAgent,
    tokio::sync::mpsc::UnboundedReceiver<sip::ua::Incoming>,
)> {
    let account = Account {
        proxy: k.addr,
        domain: k.addr.to_string(),
        user: user.into(),
        auth_user: user.into(),
        password: format!("pw-{user}"),
        expires: 600,
    };
    let mut cfg = Config::new("127.0.0.1:0".parse()?, account, "faxhub-bench-sip");
    cfg.transport = transport;
    let (ua, incoming) = UserAgent::start(cfg).await?;
    testkit::kamailio::register(&ua)
        .await
        .with_context(|| format!("{user} cannot register"))?;
    Ok((ua, incoming))
}

fn t38(port: u16) -> Vec<u8> {
    sdp::t38(
        1,
        1,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &T38Params::default(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    // Warnings only, unless RUST_LOG says more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let users: Vec<(String, String)> = (0..a.pairs * 2)
        .map(|i| (format!("1555{i:07}"), format!("pw-1555{i:07}")))
        .collect();
    let refs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let k =
        Kamailio::start(&refs)?.context("kamailio is not installed (apt-get install kamailio)")?;
    let mut callers = Vec::new();
    for p in 0..a.pairs {
        let (caller, _) = agent(&k, &users[2 * p].0, a.transport).await?;
        let (_callee, mut incoming) = agent(&k, &users[2 * p + 1].0, a.transport).await?;
        // The callee answers every call with T.38 and waits for its BYE.
        tokio::spawn(async move {
            let _keep = _callee;
            while let Some(inc) = incoming.recv().await {
                tokio::spawn(async move {
                    if let Ok(mut call) = inc.accept(t38(41000)).await {
                        while let Ok(Some(ev)) =
                            tokio::time::timeout(Duration::from_secs(30), call.events.recv()).await
                        {
                            if ev == CallEvent::Bye {
                                break;
                            }
                        }
                    }
                });
            }
        });
        callers.push((caller, users[2 * p + 1].0.clone()));
    }
    let per = a.calls / a.pairs;
    let extra = a.calls % a.pairs;
    let cpu0 = cpu_self();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, (caller, callee)) in callers.into_iter().enumerate() {
        let n = per + usize::from(i < extra);
        tasks.push(tokio::spawn(async move {
            let mut setup = Vec::with_capacity(n);
            let mut teardown = Vec::with_capacity(n);
            let mut failed = Vec::new();
            for c in 0..n {
                let t0 = Instant::now();
                match caller.call(&callee, t38(40000 + (c % 1000) as u16)).await {
                    Ok(call) => {
                        setup.push(t0.elapsed());
                        let t1 = Instant::now();
                        call.hang_up().await;
                        teardown.push(t1.elapsed());
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (setup, teardown, failed)
        }));
    }
    let (mut setup, mut teardown, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (s, d, f) = t.await?;
        setup.extend(s);
        teardown.extend(d);
        failed.extend(f);
    }
    let wall = start.elapsed();
    let cpu = cpu_self() - cpu0;
    setup.sort();
    teardown.sort();
    let done = setup.len();
    println!(
        "SIP calls through Kamailio ({}) over {}: {} pairs, {} calls",
        k.addr,
        a.transport.name(),
        a.pairs,
        a.calls
    );
    println!(
        "  completed {done}, failed {} in {:.2} s: {:.0} calls set up and torn down per second",
        failed.len(),
        wall.as_secs_f64(),
        done as f64 / wall.as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  setup (INVITE, 407, INVITE, 200, ACK): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&setup, 0.5)),
        ms(percentile(&setup, 0.99)),
        ms(setup.last().copied().unwrap_or_default())
    );
    println!(
        "  teardown (BYE, 200): p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&teardown, 0.5)),
        ms(percentile(&teardown, 0.99))
    );
    println!(
        "  user agents' CPU (callers and callees, this process): {:.3} ms per call",
        ms(cpu) / done.max(1) as f64
    );
    if let Some(f) = failed.first() {
        println!("  first failure: {f}");
        if let Ok(log) = std::fs::read_to_string(&k.log) {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            println!(
                "  Kamailio's log ends:\n    {}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
            );
        }
    }
    Ok(())
}
