//! The supervisor benchmark (issue: job submissions per second through the REST API with a one-page TIFF,
//! and submit-to-dispatch latency with 100 connected fax servers of 4 channels each).
//!
//! faxhub-bench [--fax-servers 100] [--channels 4] [--jobs 20000] [--concurrency 32] [--multipart]
//!              [--rate 200] [--latency-jobs 4000] [--submit-only]
//!
//! `--submit-only` registers the fax servers but starts none: it measures the submission path alone.
//!
//! Two phases: (a) throughput: `--jobs` submissions from `--concurrency` clients as fast as they go;
//! (b) latency: `--latency-jobs` submissions paced at `--rate` per second (below the fax servers' capacity,
//! so the figure is the supervisor's routing time, not time spent waiting for a free channel).
//!
//! Starts the real `faxhub serve` (the binary beside this one: build both with the same profile, see
//! scripts/bench.sh), runs the fax servers in this process (the real `node` runtime over a scripted line that
//! completes each call at once and timestamps its start), submits a bounded number of jobs from concurrent
//! clients, and prints throughput and latency percentiles. Everything stays on 127.0.0.1.

use anyhow::Context;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::harness::{Api, SupervisorProc, tiny_tiff};
use testkit::{Script, ScriptedLine};

struct Opts {
    fax_servers: usize,
    channels: u32,
    jobs: usize,
    concurrency: usize,
    multipart: bool,
    rate: u64,
    latency_jobs: usize,
    submit_only: bool,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        fax_servers: 100,
        channels: 4,
        jobs: 20_000,
        concurrency: 32,
        multipart: false,
        rate: 200,
        latency_jobs: 4000,
        submit_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num =
            || -> anyhow::Result<usize> { Ok(it.next().context("value missing")?.parse()?) };
        match flag.as_str() {
            "--fax-servers" => o.fax_servers = num()?,
            "--channels" => o.channels = u32::try_from(num()?)?,
            "--jobs" => o.jobs = num()?,
            "--concurrency" => o.concurrency = num()?,
            "--multipart" => o.multipart = true,
            "--rate" => o.rate = u64::try_from(num()?)?,
            "--latency-jobs" => o.latency_jobs = num()?,
            "--submit-only" => o.submit_only = true,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn submit(
    api: &Api,
    body: &serde_json::Value,
    tiff: &[u8],
    multipart: bool,
) -> anyhow::Result<String> {
    let resp = if multipart {
        let form = reqwest::multipart::Form::new()
            .text(
                "request",
                serde_json::json!({"recipients": body["recipients"]}).to_string(),
            )
            .part(
                "document",
                reqwest::multipart::Part::bytes(tiff.to_vec()).file_name("page.tif"),
            );
        api.http
            .post(format!("{}/v1/jobs", api.base))
            .bearer_auth(&api.token)
            .multipart(form)
            .send()
            .await?
    } else {
        api.http
            .post(format!("{}/v1/jobs", api.base))
            .bearer_auth(&api.token)
            .json(body)
            .send()
            .await?
    };
    let status = resp.status();
    let v: serde_json::Value = resp.json().await?;
    if status.as_u16() != 201 {
        anyhow::bail!("submission answered {status}: {v}");
    }
    Ok(v["jobs"][0]["id"].as_str().unwrap_or_default().to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("FAXHUB_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let o = opts()?;
    let dir = tempfile::Builder::new().prefix("faxhub-bench").tempdir()?;
    let sup = SupervisorProc::start(dir.path(), "[deadlines]\nheartbeat_secs = 5\n")?;
    let admin = sup.admin();
    let groupings = admin.get("/v1/groupings").await?.expect_status(200)?;
    let g = groupings[0]["id"]
        .as_str()
        .context("default grouping")?
        .to_owned();

    // The fax servers stand for separate machines: their journals go to memory (/dev/shm) so that their
    // disk syncs do not load the supervisor's disk; the supervisor's database stays on the real disk.
    let shm = std::path::Path::new("/dev/shm");
    let node_root = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("faxhub-bench-nodes")
            .tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let dispatched: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let offered: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..o.fax_servers {
        let made = admin
            .post(
                "/v1/fax-servers",
                serde_json::json!({"name": format!("bench-{i}"), "groupings": [g]}),
            )
            .await?
            .expect_status(201)?;
        ids.push(
            made["fax_server"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let config = node::NodeConfig {
            supervisor: sup.url.clone(),
            state_dir: node_root.path().join(format!("node-{i}")),
            ca_cert: None,
            reachable_prefixes: Vec::new(),
            offer_observer: Some({
                let offered = offered.clone();
                node::OfferObserver(Arc::new(move |job_id: &str| {
                    offered
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(job_id.to_owned())
                        .or_insert_with(Instant::now);
                }))
            }),
        };
        if o.submit_only {
            continue;
        }
        node::enroll(
            &config,
            made["enrollment_token"].as_str().unwrap_or_default(),
        )
        .await?;
        let seen = dispatched.clone();
        let observer: testkit::scripted::SendObserver = Arc::new(move |job: &node::SendJob| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job.job_id.clone(), Instant::now());
        });
        let (line, _inject) = ScriptedLine::new(
            Script {
                page_ms: 0,
                ..serde_json::from_str("{}")?
            },
            o.channels,
            None,
        )?;
        nodes.push(node::run(config, Arc::new(line.with_observer(observer)))?);
    }
    for _ in 0..600 {
        if o.submit_only {
            break;
        }
        let list = admin.get("/v1/fax-servers").await?.expect_status(200)?;
        let online = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["online"] == true)
            .count();
        if online == o.fax_servers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tiff = tiny_tiff();
    let doc = admin.upload(tiff.clone()).await?.expect_status(201)?;
    let sha = doc["sha256"].as_str().unwrap_or_default().to_owned();

    // Warm-up, then the measured run: a bounded number of submissions from concurrent clients.
    for i in 0..200 {
        let body =
            serde_json::json!({"recipients": [format!("+1444{:07}", i)], "documents": [sha]});
        submit(&admin, &body, &tiff, o.multipart).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let submitted: Arc<Mutex<Vec<(String, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(o.jobs)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let (api, next, submitted, sha, tiff) = (
            admin.clone(),
            next.clone(),
            submitted.clone(),
            sha.clone(),
            tiff.clone(),
        );
        let (jobs, multipart) = (o.jobs, o.multipart);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return Ok::<(), anyhow::Error>(());
                }
                let body = serde_json::json!({"recipients": [format!("+1555{:07}", i)], "documents": [sha]});
                let t0 = Instant::now();
                let id = submit(&api, &body, &tiff, multipart).await?;
                submitted.lock().unwrap_or_else(|e| e.into_inner()).push((id, t0));
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let throughput =
        submitted.lock().unwrap_or_else(|e| e.into_inner()).len() as f64 / elapsed.as_secs_f64();
    if o.submit_only {
        println!(
            "faxhub-bench: submission path alone (no fax server connected), {} submissions from {} clients: {throughput:.0} submissions/s",
            o.jobs, o.concurrency
        );
        return Ok(());
    }
    let drained = |want: usize| {
        let dispatched = dispatched.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(300);
            while dispatched.lock().unwrap_or_else(|e| e.into_inner()).len() < want
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    drained(o.jobs + 200).await;
    let all_dispatched = dispatched.lock().unwrap_or_else(|e| e.into_inner()).len();

    // (b) paced submissions, each timed from the request to the fax server's line starting the call.
    let paced: Arc<Mutex<Vec<(String, Instant, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(o.latency_jobs)));
    let interval = Duration::from_secs_f64(1.0 / o.rate.max(1) as f64);
    let mut tick = tokio::time::interval(interval);
    let mut inflight = Vec::with_capacity(o.latency_jobs);
    for i in 0..o.latency_jobs {
        tick.tick().await;
        let (api, paced, sha, tiff, multipart) = (
            admin.clone(),
            paced.clone(),
            sha.clone(),
            tiff.clone(),
            o.multipart,
        );
        inflight.push(tokio::spawn(async move {
            let body =
                serde_json::json!({"recipients": [format!("+1666{:07}", i)], "documents": [sha]});
            let t0 = Instant::now();
            let id = submit(&api, &body, &tiff, multipart).await?;
            paced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, t0, Instant::now()));
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in inflight {
        t.await??;
    }
    drained(o.jobs + 200 + o.latency_jobs).await;
    let seen = dispatched.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let paced = std::mem::take(&mut *paced.lock().unwrap_or_else(|e| e.into_inner()));
    let mut lat: Vec<Duration> = paced
        .iter()
        .filter_map(|(id, t0, _)| seen.get(id).map(|t| t.saturating_duration_since(*t0)))
        .collect();
    lat.sort();
    let offered = offered.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut at_server: Vec<Duration> = paced
        .iter()
        .filter_map(|(id, t0, _)| offered.get(id).map(|t| t.saturating_duration_since(*t0)))
        .collect();
    at_server.sort();
    let mut acked: Vec<Duration> = paced
        .iter()
        .map(|(_, t0, t1)| t1.saturating_duration_since(*t0))
        .collect();
    acked.sort();
    let kind = if o.multipart {
        "multipart upload of a one-page TIFF"
    } else {
        "JSON referencing an uploaded one-page TIFF"
    };
    println!(
        "faxhub-bench: {} fax servers x {} channels, supervisor on SQLite, {kind}",
        o.fax_servers, o.channels
    );
    println!(
        "(a) {} submissions from {} concurrent clients: {:.0} submissions/s ({} of {} dispatched afterwards)",
        o.jobs,
        o.concurrency,
        throughput,
        all_dispatched.saturating_sub(200),
        o.jobs
    );
    println!(
        "(b) {} submissions paced at {}/s: {} dispatched",
        paced.len(),
        o.rate,
        lat.len()
    );
    println!(
        "    {:<4} {:>14} {:>28} {:>34}",
        "", "submit-to-201", "submit-to-dispatch (offer", "submit-to-call-start (incl. the fax"
    );
    println!(
        "    {:<4} {:>14} {:>28} {:>34}",
        "", "", "received by the fax server)", "server's journal fsync)"
    );
    for (name, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        let ms = |v: &[Duration]| percentile(v, p).as_secs_f64() * 1000.0;
        println!(
            "    {name:<4} {:>11.1} ms {:>25.1} ms {:>31.1} ms",
            ms(&acked),
            ms(&at_server),
            ms(&lat)
        );
    }
    let metrics = admin
        .http
        .get(format!("{}/metrics", admin.base))
        .bearer_auth(testkit::harness::METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("faxhub_dispatch_latency_ms_"))
    {
        println!("server {line}");
    }
    for n in &nodes {
        n.abort();
    }
    Ok(())
}
