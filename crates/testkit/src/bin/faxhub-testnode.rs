//! A fax server process for end-to-end tests: the real `node` runtime over a scripted line.
//!
//! faxhub-testnode --supervisor URL --state-dir DIR [--enroll TOKEN] [--channels N] [--script FILE]
//!                 [--log FILE] [--inject-dir DIR] [--prefix +81]... [--drain-secs N]
//!
//! SIGTERM stops it as `faxhub node` stops: its calls get `--drain-secs` (default 30) to finish; how that
//! went is left in `stopped.json` beside the state directory.
//!
//! A JSON file dropped into the inject directory (`{"tiff": PATH, "caller": .., "called": .., "tsi": ..,
//! "pages": N}`) is "received" on the line, as if a call had brought it.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use testkit::{Script, ScriptedLine};

#[derive(Default)]
struct Args {
    supervisor: String,
    state_dir: PathBuf,
    enroll: Option<String>,
    channels: u32,
    script: Option<PathBuf>,
    log: Option<PathBuf>,
    inject: Option<PathBuf>,
    prefixes: Vec<String>,
    ca_cert: Option<PathBuf>,
    drain_secs: u64,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        channels: 4,
        drain_secs: 30,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--supervisor" => a.supervisor = val()?,
            "--state-dir" => a.state_dir = val()?.into(),
            "--enroll" => a.enroll = Some(val()?),
            "--channels" => a.channels = val()?.parse()?,
            "--script" => a.script = Some(val()?.into()),
            "--log" => a.log = Some(val()?.into()),
            "--inject-dir" => a.inject = Some(val()?.into()),
            "--prefix" => a.prefixes.push(val()?),
            "--ca-cert" => a.ca_cert = Some(val()?.into()),
            "--drain-secs" => a.drain_secs = val()?.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("FAXHUB_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse()?;
    let script: Script = match &args.script {
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => serde_json::from_str("{}")?,
    };
    let config = node::NodeConfig {
        supervisor: args.supervisor.clone(),
        state_dir: args.state_dir.clone(),
        ca_cert: args.ca_cert.clone(),
        reachable_prefixes: args.prefixes.clone(),
        offer_observer: None,
    };
    if let Some(token) = &args.enroll
        && !args.state_dir.join("credential").exists()
    {
        node::enroll(&config, token).await?;
    }
    let (line, inject) = ScriptedLine::new(script, args.channels, args.log.clone())?;
    let handle = node::run(config, Arc::new(line))?;
    if let Some(dir) = args.inject {
        std::fs::create_dir_all(&dir)?;
        tokio::spawn(async move {
            loop {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    for e in entries.flatten() {
                        let path = e.path();
                        if path.extension().is_some_and(|x| x == "json") {
                            if let Some(fax) = read_injected(&path) {
                                let _ = inject.send(fax);
                            }
                            let _ = std::fs::rename(&path, path.with_extension("done"));
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    term.recv().await;
    let stopped = handle
        .shutdown(std::time::Duration::from_secs(args.drain_secs))
        .await;
    let report = serde_json::json!({
        "calls_cut": stopped.calls_cut,
        "unacknowledged": stopped.unacknowledged,
    });
    let beside = args
        .state_dir
        .parent()
        .map_or_else(|| PathBuf::from("stopped.json"), |p| p.join("stopped.json"));
    std::fs::write(beside, report.to_string())?;
    Ok(())
}

fn read_injected(path: &std::path::Path) -> Option<node::ReceivedFax> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let tiff = std::fs::read(v["tiff"].as_str()?).ok()?;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(node::ReceivedFax {
        tiff,
        pages: u32::try_from(v["pages"].as_u64().unwrap_or(1)).unwrap_or(1),
        caller_number: v["caller"].as_str().map(str::to_owned),
        called_number: v["called"].as_str().map(str::to_owned),
        tsi: v["tsi"].as_str().map(str::to_owned),
        started_at: now.clone(),
        ended_at: now,
        stats: Default::default(),
        page_info: Vec::new(),
        failure: v["failure"].as_str().map(str::to_owned),
    })
}
