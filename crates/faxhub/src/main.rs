//! `faxhub`: the single binary. `serve` runs the supervising server, `node` a fax server, `dev` a whole
//! supervised network on loopback; the other commands are the client CLI in the spirit of HylaFAX's
//! sendfax / faxstat / faxrm.

mod admin_cli;
mod cli;
mod dev_demo;
mod imaging_cli;
mod phonebook_cli;
mod t38_cli;
mod webhooks_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "faxhub",
    version,
    about = "A supervised network fax platform",
    after_help = "Exit codes: 0 success; 1 any other error; 2 bad usage; 3 not found; \
                  4 refused by the supervisor (not signed in, not allowed, a bad value); \
                  5 a fax followed with --wait failed or was cancelled; \
                  6 the supervisor could not be reached or failed."
)]
struct Args {
    /// Log filter (tracing env-filter syntax), e.g. "info" or "faxhub=debug".
    #[arg(long, global = true, env = "FAXHUB_LOG", default_value = "info")]
    log: String,
    /// Logs as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    /// Client commands: print the supervisor's answer as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the supervising server.
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "FAXHUB_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory (database, documents, keys); overrides the configuration's data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Plain HTTP address (loopback unless allow_plain_http is configured), or "off"; default
        /// 127.0.0.1:8480.
        #[arg(long)]
        http: Option<String>,
        /// HTTPS address, or "off"; default 0.0.0.0:8443, with a self-signed certificate made in the
        /// data directory unless tls_cert and tls_key are configured.
        #[arg(long)]
        https: Option<String>,
    },
    /// Run a fax server that connects to the supervisor.
    Node {
        /// Supervisor base URL, e.g. https://supervisor.example:8443
        #[arg(long, env = "FAXHUB_SUPERVISOR")]
        supervisor: String,
        /// State directory (credential, journal, document cache).
        #[arg(long, env = "FAXHUB_NODE_DIR")]
        state_dir: PathBuf,
        /// One-time enrollment token, needed on the first run only.
        #[arg(long, env = "FAXHUB_ENROLLMENT_TOKEN")]
        enroll: Option<String>,
        /// PEM certificate (or CA) of the supervisor to trust.
        #[arg(long, env = "FAXHUB_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// Address of this fax server's SIP sockets, UDP and TCP on the same port (a concrete IP: it goes
        /// into Via and Contact; port 0 picks a port free for both).
        #[arg(long, env = "FAXHUB_SIP_LISTEN", default_value = "127.0.0.1:5060")]
        sip_listen: std::net::SocketAddr,
        /// IP address for T.38 media (UDPTL) sockets; by default the SIP address's.
        #[arg(long, env = "FAXHUB_MEDIA_IP")]
        media_ip: Option<std::net::IpAddr>,
        /// Seconds between OPTIONS keep-alives to the SIP proxy; while they go unanswered the fax server
        /// offers no channels.
        #[arg(long, env = "FAXHUB_SIP_KEEPALIVE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        sip_keepalive: u64,
        /// On SIGTERM or Ctrl-C, seconds the calls under way get to finish (no new call is taken
        /// meanwhile); those still running then are hung up and their jobs go to another fax server. The
        /// default fits within systemd's 90 s stop timeout.
        #[arg(long, env = "FAXHUB_DRAIN_SECS", default_value_t = 75)]
        drain_secs: u64,
    },
    /// A supervisor and two fax servers in one process on loopback, in a fresh data directory, or resumed
    /// in one an earlier `faxhub dev --data-dir` made (its clients, jobs and inbox kept).
    Dev {
        /// Where the network lives (default: a new directory under the temporary directory). A directory
        /// `faxhub dev` made before is resumed; any other must be empty.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address of the plain HTTP API (loopback).
        #[arg(long, default_value = "127.0.0.1:8480")]
        http: String,
        /// Address of the HTTPS API.
        #[arg(long, default_value = "127.0.0.1:8443")]
        https: String,
        /// Do not send the demo fax (a PDF from fax-a to fax-b, into the inbox) once the network is up.
        #[arg(long)]
        no_demo: bool,
    },
    /// Render documents to a TIFF Class F file as they would be faxed.
    Convert(imaging_cli::ConvertArgs),
    /// Render one page of a document on the fax grid to a PNG.
    Preview(imaging_cli::PreviewArgs),
    /// Fax over T.38 UDPTL directly between two UDP addresses (no SIP): a diagnostic for operators.
    #[command(subcommand)]
    T38(t38_cli::T38Command),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

/// A client command whose output goes to a pipe closed early (`faxhub jobs | head -1`) ends quietly, as
/// Unix tools do, instead of reporting the failed write: printing panics on EPIPE (Rust ignores SIGPIPE,
/// which the server side needs), so the panic hook ends the process for that one panic.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logs(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: logs written to files and journals stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn parse_listen(flag: &str, v: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("--{flag} {v:?} is not an address like 127.0.0.1:8480"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logs(&args.log, args.log_json);
    supervisor::server::install_crypto();
    if matches!(args.command, Command::Client(_)) {
        quiet_on_closed_pipe();
        cli::set_json(args.json);
    }
    let client = matches!(args.command, Command::Client(_));
    let done = match run(args.command).await {
        Ok(()) if client => cli::print_json_answer(),
        other => other,
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faxhub: {e:#}");
            std::process::ExitCode::from(cli::Failure::exit_code(&e))
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config,
            data_dir,
            http,
            https,
        } => {
            let mut cfg = supervisor::Config::load(config.as_deref())?;
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(h) = http {
                cfg.http_listen = parse_listen("http", &h)?;
            }
            if let Some(h) = https {
                cfg.https_listen = parse_listen("https", &h)?;
            }
            let mut running = supervisor::Supervisor::start(cfg).await?;
            announce(&running, false);
            tokio::select! {
                () = running.wait() => anyhow::bail!("a listener stopped"),
                signal = stop_signal() => {
                    tracing::info!("{signal}: stopping (requests under way finish first)");
                }
            }
            running.stop().await;
            Ok(())
        }
        Command::Node {
            supervisor,
            state_dir,
            enroll,
            ca_cert,
            sip_listen,
            media_ip,
            sip_keepalive,
            drain_secs,
        } => {
            let media_ip = media_ip.unwrap_or(sip_listen.ip());
            if sip_listen.ip().is_unspecified() || media_ip.is_unspecified() {
                anyhow::bail!(
                    "--sip-listen and --media-ip need a concrete IP address (it is sent in SIP and SDP), not {}",
                    sip_listen.ip()
                );
            }
            let config = node::NodeConfig {
                supervisor,
                state_dir,
                ca_cert,
                reachable_prefixes: Vec::new(),
                offer_observer: None,
            };
            if let Some(token) = enroll {
                let id = node::enroll(&config, &token).await?;
                eprintln!("enrolled as fax server {id}");
            }
            let line = node::SipLine::new(node::SipLineConfig {
                sip_bind: sip_listen,
                media_ip,
                keepalive: std::time::Duration::from_secs(sip_keepalive),
            });
            let handle = node::run(config, Arc::new(line))?;
            let signal = stop_signal().await;
            tracing::info!(
                "{signal}: stopping (calls under way get {drain_secs} s to finish; again to stop at once)"
            );
            tokio::select! {
                stopped = handle.shutdown(std::time::Duration::from_secs(drain_secs)) => {
                    if stopped.calls_cut > 0 {
                        tracing::warn!(calls = stopped.calls_cut, "calls were hung up unfinished; their jobs go to another fax server");
                    }
                }
                signal = stop_signal() => tracing::warn!("{signal} again: stopping at once"),
            }
            Ok(())
        }
        Command::Dev {
            data_dir,
            http,
            https,
            no_demo,
        } => dev(data_dir, &http, &https, !no_demo).await,
        Command::Convert(a) => tokio::task::spawn_blocking(move || imaging_cli::convert(a)).await?,
        Command::Preview(a) => tokio::task::spawn_blocking(move || imaging_cli::preview(a)).await?,
        Command::T38(c) => t38_cli::run(c).await,
        Command::Client(c) => cli::run(c).await,
    }
}

/// Resolves on SIGTERM (systemd, docker, kill) or SIGINT (Ctrl-C), naming it.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!("SIGTERM cannot be caught ({e}); only Ctrl-C stops gracefully");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Prints the listener URLs and, on first start, where the bootstrap administrator's credentials are;
/// with `show_secrets` (`faxhub dev`, a throwaway network on loopback) the credentials themselves.
fn announce(running: &supervisor::Running, show_secrets: bool) {
    if let Some(a) = running.http_addr {
        println!("API: http://{a}/v1  (OpenAPI: http://{a}/v1/openapi.json)");
    }
    if let Some(a) = running.https_addr {
        println!("API: https://{a}/v1");
    }
    if let Some(a) = running.metrics_addr {
        println!("metrics: http://{a}/metrics");
    }
    if let Some(b) = &running.bootstrap {
        if show_secrets {
            println!("bootstrap administrator {:?} created; shown once:", b.name);
            println!("  password: {}", b.password);
            println!("  token:    {}", b.token);
        } else {
            println!(
                "bootstrap administrator {:?} created; its password and token are in {} (readable by this user only): sign in, change the password, then delete the file",
                b.name,
                b.file.display()
            );
        }
    }
}

/// What `faxhub dev` keeps in its data directory to resume the network there: the SIP ports, the fax
/// servers and the administrator's token (the file is the owner's alone).
#[derive(serde::Serialize, serde::Deserialize)]
struct DevNetwork {
    sip_ports: [u16; 2],
    fax_server_ids: Vec<String>,
    admin_token: String,
}

/// The file that marks a data directory as `faxhub dev`'s own.
const DEV_FILE: &str = "faxhub-dev.json";
/// The fax servers of `faxhub dev`, their numbers, and the number each may dial.
const DEV_SERVERS: [&str; 2] = ["fax-a", "fax-b"];
const DEV_NUMBERS: [&str; 2] = ["+15550101", "+15550102"];

/// The settings of dev fax server `me`: its number, the other as its SIP proxy (no registrar).
fn dev_settings(me: usize, sip_ports: [u16; 2]) -> serde_json::Value {
    let other = 1 - me;
    serde_json::json!({
        "station_id": DEV_NUMBERS[me],
        "local_numbers": [DEV_NUMBERS[me]],
        "channels": 4,
        "sip": {"registrar": "", "proxy": format!("127.0.0.1:{}", sip_ports[other]), "user": DEV_NUMBERS[me].trim_start_matches('+'), "transport": "udp"},
        "dial_rules": {"prefixes": [DEV_NUMBERS[other]], "access_code": ""},
    })
}

/// A loopback port free for both UDP and TCP (a SIP line binds both).
fn free_sip_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if sip_port_free(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no loopback port is free for SIP over both UDP and TCP")
}

fn sip_port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn write_dev_network(dir: &std::path::Path, network: &DevNetwork) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(DEV_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(&serde_json::to_vec_pretty(network)?)?;
    Ok(())
}

async fn dev(data_dir: Option<PathBuf>, http: &str, https: &str, demo: bool) -> anyhow::Result<()> {
    let data_dir = match data_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("faxhub-dev-{}", std::process::id())),
    };
    // A directory this command made before is resumed (its clients, jobs and inbox); any other that is
    // not empty is refused.
    let resumed: Option<DevNetwork> = match std::fs::read(data_dir.join(DEV_FILE)) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged", data_dir.join(DEV_FILE).display()))?,
        ),
        Err(_) if data_dir.exists() && std::fs::read_dir(&data_dir)?.next().is_some() => {
            anyhow::bail!(
                "{} is not empty and was not made by faxhub dev; give a new directory (or one faxhub dev made, to resume it)",
                data_dir.display()
            );
        }
        Err(_) => None,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let cfg = supervisor::Config {
        data_dir: data_dir.join("supervisor"),
        http_listen: parse_listen("http", http)?,
        https_listen: parse_listen("https", https)?,
        ..Default::default()
    };
    let running = supervisor::Supervisor::start(cfg).await?;
    let https_addr = running
        .https_addr
        .context("faxhub dev needs its HTTPS listener")?;
    let api = format!("https://localhost:{}", https_addr.port());
    let ca = data_dir.join("supervisor/tls/cert.pem");
    let token = match (&resumed, &running.bootstrap) {
        (Some(r), _) => r.admin_token.clone(),
        (None, Some(b)) => b.token.clone(),
        (None, None) => anyhow::bail!(
            "{} holds a supervisor but not faxhub dev's network; give a new directory",
            data_dir.display()
        ),
    };
    let client = cli::Api::new(&api, &token, Some(&ca))?;
    // Two fax servers calling each other over SIP on loopback, each the other's proxy (no registrar):
    // fax-a answers +15550101 and may dial +15550102; fax-b the other way round.
    let numbers = DEV_NUMBERS;
    let (sip_ports, server_ids) = match &resumed {
        Some(r) => {
            let mut ports = r.sip_ports;
            for p in &mut ports {
                if !sip_port_free(*p) {
                    *p = free_sip_port()?;
                }
            }
            if ports != r.sip_ports {
                // Each fax server's proxy is the other's port: tell them the new ones.
                for (i, id) in r.fax_server_ids.iter().enumerate() {
                    client
                        .put_json(
                            &format!("/v1/fax-servers/{id}/settings"),
                            &dev_settings(i, ports),
                        )
                        .await
                        .with_context(|| format!("moving {} to a new SIP port", DEV_SERVERS[i]))?;
                }
            }
            (ports, r.fax_server_ids.clone())
        }
        None => {
            let ports = [free_sip_port()?, free_sip_port()?];
            let groupings: Vec<supervisor::api::admin::GroupingView> =
                client.get_view("/v1/groupings").await?;
            let default = groupings
                .first()
                .context("the supervisor has no grouping")?
                .id
                .clone();
            let mut ids = Vec::new();
            for (i, name) in DEV_SERVERS.into_iter().enumerate() {
                let made: supervisor::api::admin::NewFaxServerResponse = cli::view(
                    client
                        .post_json(
                            "/v1/fax-servers",
                            &serde_json::json!({"name": name, "groupings": [default]}),
                        )
                        .await?,
                )?;
                let id = made.fax_server.id;
                client
                    .put_json(
                        &format!("/v1/fax-servers/{id}/settings"),
                        &dev_settings(i, ports),
                    )
                    .await
                    .with_context(|| format!("setting up {name}"))?;
                let config = dev_node_config(&api, &data_dir, name, &ca);
                node::enroll(&config, &made.enrollment_token).await?;
                ids.push(id);
            }
            write_dev_network(
                &data_dir,
                &DevNetwork {
                    sip_ports: ports,
                    fax_server_ids: ids.clone(),
                    admin_token: token.clone(),
                },
            )?;
            (ports, ids)
        }
    };
    if let Some(r) = &resumed
        && r.sip_ports != sip_ports
    {
        write_dev_network(
            &data_dir,
            &DevNetwork {
                sip_ports,
                fax_server_ids: server_ids.clone(),
                admin_token: token.clone(),
            },
        )?;
    }
    let mut nodes = Vec::new();
    for (i, name) in DEV_SERVERS.into_iter().enumerate() {
        let line = node::SipLine::new(node::SipLineConfig {
            sip_bind: std::net::SocketAddr::from(([127, 0, 0, 1], sip_ports[i])),
            media_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            keepalive: std::time::Duration::from_secs(30),
        });
        nodes.push(node::run(
            dev_node_config(&api, &data_dir, name, &ca),
            Arc::new(line),
        )?);
    }
    if resumed.is_some() {
        println!("faxhub dev: resumed the network in {}", data_dir.display());
    }
    println!(
        "faxhub dev: a supervisor and two fax servers on loopback calling each other over SIP and T.38"
    );
    println!(
        "  fax-a answers {} (SIP 127.0.0.1:{}), fax-b answers {} (SIP 127.0.0.1:{})",
        numbers[0], sip_ports[0], numbers[1], sip_ports[1]
    );
    println!("data directory: {}", data_dir.display());
    announce(&running, true);
    println!("CA certificate for clients: {}", ca.display());
    println!(
        "try: faxhub login --url {api} --token {token} --ca-cert {}",
        ca.display()
    );
    println!(
        "     faxhub send --to {} --wait YOUR.pdf    (fax-a calls fax-b; the fax lands in the inbox: faxhub inbox)",
        numbers[1]
    );
    println!(
        "     webhooks go only to public addresses; to let them reach this machine:\n       faxhub settings set supervisor 'webhooks.allowed_networks=[\"127.0.0.0/8\",\"::1\"]'"
    );
    // The demo fax goes once, when the network is made.
    if demo && resumed.is_none() {
        let saved = data_dir.join("demo-received.tif");
        tokio::select! {
            r = dev_demo::run(&client, &server_ids, numbers[1], &saved) => match r {
                Ok(()) => println!("demo: done; the network keeps running (Ctrl-C stops it)"),
                Err(e) => println!("demo: FAILED: {e:#}"),
            },
            signal = stop_signal() => return stop_dev(signal, nodes, running).await,
        }
    }
    let signal = stop_signal().await;
    stop_dev(signal, nodes, running).await
}

/// The configuration of dev fax server `name`, its state in the data directory.
fn dev_node_config(
    api: &str,
    data_dir: &std::path::Path,
    name: &str,
    ca: &std::path::Path,
) -> node::NodeConfig {
    node::NodeConfig {
        supervisor: api.to_owned(),
        state_dir: data_dir.join(name),
        ca_cert: Some(ca.to_owned()),
        reachable_prefixes: Vec::new(),
        offer_observer: None,
    }
}

/// Stops `faxhub dev`'s network gracefully: the fax servers finish their calls (10 s at most), then the
/// supervisor.
async fn stop_dev(
    signal: &str,
    nodes: Vec<node::NodeHandle>,
    running: supervisor::Running,
) -> anyhow::Result<()> {
    println!("{signal}: stopping the network");
    for n in nodes {
        n.shutdown(std::time::Duration::from_secs(10)).await;
    }
    running.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::CommandFactory;

    /// `faxhub … --help` explains every option and argument of every command.
    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if matches!(a.get_id().as_str(), "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} <{}>", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Args::command(), "faxhub", &mut missing);
        assert!(missing.is_empty(), "no help for:\n{}", missing.join("\n"));
    }
}
