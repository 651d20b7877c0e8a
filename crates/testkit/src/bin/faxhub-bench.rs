//! The supervisor benchmark (issue: job submissions per second through the REST API with a one-page TIFF,
//! and submit-to-dispatch latency with 100 connected fax servers of 4 channels each).
//!
//! faxhub-bench [--fax-servers 100] [--channels 4] [--jobs 20000] [--concurrency 32] [--multipart]
//!              [--rate 200] [--latency-jobs 4000] [--submit-only]
//! faxhub-bench --image-uploads 64 [--image png16|jpeg|gif|tiff] [--image-file PATH]
//!
//! `--submit-only` registers the fax servers but starts none: it measures the submission path alone.
//!
//! `--image-uploads N` is another benchmark (issue 14: 64 concurrent uploads of the worst allowed image keep
//! the supervisor under 1 GB and `/healthz` under 100 ms): N uploads at once of the largest picture the
//! limits allow (64 megapixels; `png16` is 16-bit RGBA, the most memory to decode; or a file), while the
//! supervisor's resident memory is sampled from /proc and `/healthz` is asked every 10 ms.
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
    image_uploads: usize,
    image: String,
    image_file: Option<String>,
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
        image_uploads: 0,
        image: "png16".into(),
        image_file: None,
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
            "--image-uploads" => o.image_uploads = num()?,
            "--image" => o.image = it.next().context("value missing")?,
            "--image-file" => o.image_file = Some(it.next().context("value missing")?),
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
    if o.image_uploads > 0 {
        return image_uploads(&o).await;
    }
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
    // End to end: from the first submission until the last of them started its call at a fax server.
    let end_to_end = {
        let seen = dispatched.lock().unwrap_or_else(|e| e.into_inner());
        let ids = submitted.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .filter_map(|(id, _)| seen.get(id))
            .max()
            .map(|last| last.saturating_duration_since(start))
    };
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
        "(a) {} submissions from {} concurrent clients: {:.0} submissions/s; {} of {} dispatched, the last {:.2} s after the first submission: {:.0} jobs/s submitted and dispatched end to end",
        o.jobs,
        o.concurrency,
        throughput,
        all_dispatched.saturating_sub(200),
        o.jobs,
        end_to_end.unwrap_or_default().as_secs_f64(),
        o.jobs as f64 / end_to_end.unwrap_or(Duration::MAX).as_secs_f64()
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
        .filter(|l| l.starts_with("faxhub_dispatch_latency_seconds_"))
    {
        println!("server {line}");
    }
    for n in &nodes {
        n.abort();
    }
    Ok(())
}

/// The largest picture the limits allow (8000 × 8000 = 64 megapixels), in smooth gradients so that it
/// stays under the upload limit.
fn worst_image(kind: &str) -> anyhow::Result<Vec<u8>> {
    use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, Rgba};
    const SIDE: u32 = 8000;
    let mut out = std::io::Cursor::new(Vec::new());
    match kind {
        "png16" => DynamicImage::ImageRgba16(ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
            Rgba([(x * 8) as u16, (y * 8) as u16, 20_000, 40_000])
        }))
        .write_to(&mut out, ImageFormat::Png)?,
        "jpeg" => DynamicImage::ImageRgb8(ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
            Rgb([(x / 32) as u8, (y / 32) as u8, 128])
        }))
        .write_to(&mut out, ImageFormat::Jpeg)?,
        "gif" => DynamicImage::ImageRgba8(ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
            Rgba([((x / 500) * 16) as u8, ((y / 500) * 16) as u8, 0, 255])
        }))
        .write_to(&mut out, ImageFormat::Gif)?,
        "tiff" => {
            // 16-bit RGBA, Deflate: the most a colour TIFF page costs to decode (in bands of 64 pixels, so
            // that it compresses under the upload limit).
            let data: Vec<u16> = (0..SIDE * SIDE)
                .flat_map(|i| {
                    let (x, y) = (i % SIDE / 64, i / SIDE / 64);
                    [(x * 512) as u16, (y * 512) as u16, 20_000, 40_000]
                })
                .collect();
            tiff::encoder::TiffEncoder::new(&mut out)?
                .with_compression(tiff::encoder::Compression::Deflate(
                    tiff::encoder::DeflateLevel::Fast,
                ))
                .write_image::<tiff::encoder::colortype::RGBA16>(SIDE, SIDE, &data)?;
        }
        other => anyhow::bail!("--image {other}: use png16, jpeg, gif or tiff"),
    }
    Ok(out.into_inner())
}

/// Resident and peak resident memory of a process, bytes (Linux).
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn image_uploads(o: &Opts) -> anyhow::Result<()> {
    let (image, what) = match &o.image_file {
        Some(path) => (std::fs::read(path)?, path.clone()),
        None => (
            tokio::task::spawn_blocking({
                let kind = o.image.clone();
                move || worst_image(&kind)
            })
            .await??,
            format!("{} 8000x8000", o.image),
        ),
    };
    let dir = tempfile::Builder::new().prefix("faxhub-bench").tempdir()?;
    let sup = SupervisorProc::start(dir.path(), "")?;
    let pid = sup.pid().context("the supervisor has no process id")?;
    let admin = sup.admin();
    // No client timeout: the last uploads wait for the checks before them.
    let http = reqwest::Client::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (rss_before, _) = memory_of(pid);
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(memory_of(pid).0);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        }
    });
    let health = tokio::spawn({
        let (stop, url, probe) = (
            stop.clone(),
            format!("{}/healthz", admin.base),
            reqwest::Client::new(),
        );
        async move {
            let (mut times, began) = (Vec::new(), Instant::now());
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = probe
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                times.push((t0.elapsed(), ok, t0 - began));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            times
        }
    });
    let start = Instant::now();
    let uploads: Vec<_> = (0..o.image_uploads)
        .map(|_| {
            let (http, url, token, body) = (
                http.clone(),
                format!("{}/v1/documents", admin.base),
                admin.token.clone(),
                image.clone(),
            );
            tokio::spawn(async move {
                let t0 = Instant::now();
                // A refused connection counts as an answer of 0 with its error.
                let (status, text) = match http.post(url).bearer_auth(token).body(body).send().await
                {
                    Ok(resp) => (
                        resp.status().as_u16(),
                        resp.text().await.unwrap_or_default(),
                    ),
                    Err(e) => (0, e.to_string()),
                };
                Ok::<_, anyhow::Error>((status, text, t0.elapsed()))
            })
        })
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut times = Vec::new();
    let mut sample = String::new();
    for u in uploads {
        let (status, text, took) = u.await??;
        *statuses.entry(status).or_default() += 1;
        if status != 201 && sample.is_empty() {
            sample = text;
        }
        times.push(took);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_sampled = sampler.await?;
    let (_, peak) = memory_of(pid);
    let health = health.await?;
    let failed = health.iter().filter(|(_, ok, _)| !ok).count();
    let slow: Vec<String> = health
        .iter()
        .filter(|(t, _, _)| *t > Duration::from_millis(50))
        .map(|(t, _, at)| {
            format!(
                "{:.0} ms at {:.1} s",
                t.as_secs_f64() * 1000.0,
                at.as_secs_f64()
            )
        })
        .collect();
    let mut health: Vec<Duration> = health.into_iter().map(|(t, _, _)| t).collect();
    health.sort();
    times.sort();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1000.0;
    println!(
        "faxhub-bench: {} concurrent uploads of {what} ({:.1} MiB), supervisor with its default check budget",
        o.image_uploads,
        mib(image.len() as u64)
    );
    let mut answered: Vec<_> = statuses.into_iter().collect();
    answered.sort();
    println!(
        "  answers {answered:?} in {:.1} s{}",
        elapsed.as_secs_f64(),
        if sample.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {sample})")
        }
    );
    println!(
        "  upload time p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        ms(&times, 0.5),
        ms(&times, 0.9),
        ms(&times, 1.0)
    );
    println!(
        "  supervisor memory: {:.0} MiB before, peak {:.0} MiB sampled, {:.0} MiB peak resident (VmHWM)",
        mib(rss_before),
        mib(peak_sampled),
        mib(peak)
    );
    println!(
        "  /healthz every 10 ms meanwhile: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} over 100 ms, {failed} failed",
        health.len(),
        ms(&health, 0.5),
        ms(&health, 0.99),
        ms(&health, 1.0),
        health
            .iter()
            .filter(|t| **t > Duration::from_millis(100))
            .count()
    );
    if !slow.is_empty() {
        println!("  answers over 50 ms: {}", slow.join(", "));
    }
    Ok(())
}
