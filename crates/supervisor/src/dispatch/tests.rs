//! The dispatcher over a real store: the in-doubt rules, the watchdog and withdrawals, with a fax server
//! whose link is a channel the test reads. (Selection is tested without a store in `select`.)

use super::*;
use protocol::{Capabilities, Envelope, JobProgress, JobResult, Outcome};

/// A dispatcher over a real store, with one client allowed to send through one fax server whose link
/// is a channel the test reads. Deadlines of 1 s and a call limit of 3 s.
struct Rig {
    d: Arc<Dispatcher>,
    fs: String,
    link: mpsc::UnboundedReceiver<Envelope>,
    dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rig {
    async fn new() -> (Self, Job) {
        Self::with(|_| {}).await
    }

    /// A rig whose configuration `change` adjusts.
    async fn with(change: impl FnOnce(&mut Config)) -> (Self, Job) {
        let dir = std::env::temp_dir().join(store::new_id("faxhub-dispatch-test"));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::open(&dir.join("faxhub.db")).await.expect("store");
        let client = store
            .create_client(store::NewClient::application("app"))
            .await
            .expect("client");
        let fs = store
            .create_fax_server("fs", &[], "enr", i64::MAX)
            .await
            .expect("fs");
        let g = store.create_grouping("g").await.expect("grouping");
        for (kind, id) in [
            (store::MemberKind::Client, &client.id),
            (store::MemberKind::FaxServer, &fs.id),
        ] {
            store
                .add_grouping_member(&g.id, kind, id)
                .await
                .expect("member");
        }
        store
            .add_grant(&client.id, "role_user", "all", "", None)
            .await
            .expect("grant");
        store
            .insert_document("ab", 3, "image/tiff", 1, Some(&client.id))
            .await
            .expect("document");
        let access = Arc::new(Access::default());
        access.reload(&store).await.expect("access");
        let mut config = Config::default();
        config.deadlines = crate::config::DeadlineConfig {
            offered_secs: 1,
            dialling_secs: 1,
            transmitting_secs: 1,
            query_secs: 1,
            link_grace_secs: 1,
            call_setup_secs: 3,
            max_page_bits: 0,
            ..Default::default()
        };
        change(&mut config);
        let live = Arc::new(crate::supervisor_settings::Live::new(
            crate::supervisor_settings::SupervisorSettings::from_config(&config),
        ));
        let d = Dispatcher::new(
            store.clone(),
            Arc::new(config),
            access,
            Arc::new(Metrics::default()),
            live,
            EventBus::default(),
        );
        let (tx, link) = mpsc::unbounded_channel();
        let caps = Capabilities {
            channels: 1,
            ..Default::default()
        };
        d.connected(&fs.id, caps, tx, Vec::new())
            .await
            .expect("connected");
        let new = store::NewJob {
            id: store::new_id("job"),
            batch_id: store::new_id("bat"),
            client_id: client.id.clone(),
            recipient: "+15551234567".into(),
            priority: 0,
            options: "{}".into(),
            max_tries: 3,
            kill_at: i64::MAX,
            not_before: 0,
            pages_total: 1,
            idempotency_key: None,
            request_hash: None,
            documents: vec!["ab".into()],
        };
        let (_, jobs) = store.insert_jobs(&[new], &[]).await.expect("job");
        let job = jobs.into_iter().next().expect("one");
        d.enqueue(std::slice::from_ref(&job))
            .await
            .expect("enqueue");
        let rig = Self {
            d,
            fs: fs.id,
            link,
            dir,
        };
        (rig, job)
    }

    fn next_message(&mut self) -> Body {
        self.link
            .try_recv()
            .expect("a message to the fax server")
            .body
    }

    async fn progress(&self, attempt_id: &str, phase: Phase) {
        let progress = JobProgress {
            attempt_id: attempt_id.to_owned(),
            phase,
            page: None,
            pages_total: None,
            bit_rate: None,
        };
        self.d
            .on_progress(&self.fs, progress)
            .await
            .expect("progress");
        self.d.flush_progress().await;
    }

    /// The job's status and its attempts' statuses.
    /// (As the API shows them, so the expectations read as the API.)
    async fn statuses(&self, job: &Job) -> (String, Vec<String>) {
        let store = self.d.store();
        let job = store.job(&job.id).await.expect("job").expect("exists");
        let attempts = store.attempts_of(&job.id).await.expect("attempts");
        (
            job.status.to_string(),
            attempts.into_iter().map(|a| a.status.to_string()).collect(),
        )
    }

    /// Lets `secs` pass, then runs the watchdog once.
    async fn after(&self, secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        self.d.watchdog_round().await.expect("watchdog");
    }
}

fn owned(job: &str, attempts: &[&str]) -> (String, Vec<String>) {
    (
        job.to_owned(),
        attempts.iter().map(|a| (*a).to_owned()).collect(),
    )
}

/// A fax server that stays linked but leaves a question unanswered: its attempt is in doubt, back
/// in touch when it reports, and given up only after the call limit from the question, when its
/// job is queued again and the fax server told to stop; its late `sent` is then recorded and sends
/// the job, taking it out of the queue.
#[tokio::test]
async fn an_unanswered_question_puts_the_attempt_in_doubt_until_the_call_limit() {
    let (mut rig, job) = Rig::new().await;
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(offer) = rig.next_message() else {
        panic!("an offer first");
    };
    assert_eq!(
        offer.call_limit_ms,
        Some(3000),
        "3 s of set-up, no page time"
    );
    let attempt = offer.attempt_id;
    rig.progress(&attempt, Phase::Dialling).await;
    assert_eq!(rig.statuses(&job).await, owned("active", &["active"]));

    rig.after(1.1).await;
    assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
    rig.after(1.1).await;
    assert_eq!(
        rig.statuses(&job).await,
        owned("in_doubt", &["in_doubt"]),
        "the question went unanswered"
    );
    rig.progress(&attempt, Phase::Transmitting).await;
    assert_eq!(
        rig.statuses(&job).await,
        owned("active", &["active"]),
        "back in touch"
    );

    rig.after(1.1).await;
    assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
    rig.after(1.1).await;
    assert_eq!(rig.statuses(&job).await, owned("in_doubt", &["in_doubt"]));
    rig.after(0.5).await;
    assert_eq!(
        rig.statuses(&job).await.1,
        vec!["in_doubt"],
        "not given up before the call limit"
    );
    rig.after(1.6).await;
    assert_eq!(rig.statuses(&job).await, owned("queued", &["abandoned"]));
    assert!(matches!(
        rig.next_message(),
        Body::JobCancel {
            only_before_dialling: false,
            ..
        }
    ));
    assert_eq!(rig.d.queue_len(), 1);

    let sent = JobResult {
        attempt_id: attempt,
        outcome: Outcome::Sent { pages: 1 },
        stats: Default::default(),
    };
    rig.d.on_result(&rig.fs, sent).await.expect("late result");
    assert_eq!(rig.statuses(&job).await, owned("sent", &["succeeded"]));
    assert_eq!(rig.d.queue_len(), 0, "the retry is withdrawn");
}

/// The client cancels while the fax server is away and the offer may never have arrived: when it
/// comes back without the attempt, the offer is not sent again; the job ends cancelled.
#[tokio::test]
async fn an_offer_lost_in_an_outage_is_not_sent_again_for_a_cancelled_job() {
    let (mut rig, job) = Rig::new().await;
    rig.d.dispatch_round().await.expect("dispatch");
    assert!(matches!(rig.next_message(), Body::JobOffer(_)));
    assert!(rig.d.store().request_cancel(&job.id).await.expect("cancel"));
    let (tx, mut link) = mpsc::unbounded_channel();
    let caps = Capabilities {
        channels: 1,
        ..Default::default()
    };
    rig.d
        .connected(&rig.fs, caps, tx, Vec::new())
        .await
        .expect("connected");
    assert_eq!(rig.statuses(&job).await, owned("cancelled", &["failed"]));
    while let Ok(m) = link.try_recv() {
        assert!(
            !matches!(m.body, Body::JobOffer(_)),
            "offered again: {:?}",
            m.body
        );
    }
    assert_eq!(rig.d.queue_len(), 0);
}

/// A fax server that keeps reporting on a long call is not cut by `max_attempt_secs` before the call
/// limit its offer granted (3 s here, the maximum 1 s): the document is not sent again from page one.
#[tokio::test]
async fn the_watchdog_leaves_an_attempt_in_touch_until_its_call_limit() {
    let (mut rig, job) = Rig::with(|c| c.deadlines.max_attempt_secs = 1).await;
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(offer) = rig.next_message() else {
        panic!("an offer first");
    };
    let attempt = offer.attempt_id;
    for _ in 0..5 {
        rig.progress(&attempt, Phase::Transmitting).await;
        rig.after(0.5).await;
    }
    assert_eq!(
        rig.statuses(&job).await,
        owned("active", &["active"]),
        "cut at 2.5 s, within the call limit"
    );
    for _ in 0..4 {
        rig.progress(&attempt, Phase::Transmitting).await;
        rig.after(0.5).await;
    }
    assert_eq!(
        rig.statuses(&job).await,
        owned("queued", &["abandoned"]),
        "past the call limit and the grace (4 s)"
    );
}

/// A fax server whose attempt is already in doubt is withdrawn: the attempt stays in doubt until its
/// doubt ends (no call of it can run any more), as before the withdrawal; the job is not moved on at once.
#[tokio::test]
async fn withdrawing_a_fax_server_keeps_an_attempt_in_doubt_until_its_doubt_ends() {
    let (mut rig, job) = Rig::new().await;
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(offer) = rig.next_message() else {
        panic!("an offer first");
    };
    rig.progress(&offer.attempt_id, Phase::Dialling).await;
    rig.after(1.1).await;
    assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
    rig.after(1.1).await;
    assert_eq!(rig.statuses(&job).await, owned("in_doubt", &["in_doubt"]));

    assert!(rig.d.begin_withdrawal(&rig.fs, "revoked"));
    rig.d.unlink(&rig.fs);
    rig.after(0.5).await;
    assert_eq!(
        rig.statuses(&job).await,
        owned("in_doubt", &["in_doubt"]),
        "not moved on before its doubt ends (the call limit, 3 s from the question)"
    );
    assert!(rig.d.holds_attempts(&rig.fs));
    rig.after(1.6).await;
    assert_eq!(rig.statuses(&job).await, owned("queued", &["abandoned"]));
    assert!(!rig.d.holds_attempts(&rig.fs));
}

/// A retry steps down (lower rate, error correction off, as the fax server's policy says) only after a
/// failure of training or transmission; after a busy line it keeps the full rate.
#[tokio::test]
async fn only_a_transmission_failure_makes_the_next_attempt_step_down() {
    let (mut rig, _job) = Rig::with(|c| c.retry.schedule_secs = vec![0]).await;
    let mut offers = Vec::new();
    for reason in [
        protocol::FailureReason::Busy,
        protocol::FailureReason::TrainingFailed,
    ] {
        rig.d.dispatch_round().await.expect("dispatch");
        let Body::JobOffer(offer) = rig.next_message() else {
            panic!("an offer");
        };
        let failed = JobResult {
            attempt_id: offer.attempt_id.clone(),
            outcome: Outcome::failed(reason, None, 0),
            stats: Default::default(),
        };
        offers.push(offer);
        rig.d.on_result(&rig.fs, failed).await.expect("result");
    }
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(third) = rig.next_message() else {
        panic!("a third offer");
    };
    offers.push(third);
    let stepped: Vec<(u32, bool)> = offers
        .iter()
        .map(|o| (o.attempt_number, o.step_down))
        .collect();
    assert_eq!(stepped, [(1, false), (2, false), (3, true)]);
}

/// The log as a `String`, for the tests that read what the dispatcher logged.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Every attempt's end is a line in the log with its result, as every received fax is: a busy line (the
/// job queued again) and then the fax sent (through the link writer's fast path).
#[tokio::test]
async fn every_attempt_end_is_logged_with_its_result() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (mut rig, job) = Rig::with(|c| c.retry.schedule_secs = vec![0]).await;
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(first) = rig.next_message() else {
        panic!("an offer");
    };
    let busy = JobResult {
        attempt_id: first.attempt_id.clone(),
        outcome: Outcome::failed(protocol::FailureReason::Busy, None, 0),
        stats: Default::default(),
    };
    rig.d.on_result(&rig.fs, busy).await.expect("busy");
    rig.d.dispatch_round().await.expect("dispatch");
    let Body::JobOffer(second) = rig.next_message() else {
        panic!("a second offer");
    };
    rig.progress(&second.attempt_id, Phase::Transmitting).await;
    let sent = JobResult {
        attempt_id: second.attempt_id.clone(),
        outcome: Outcome::Sent { pages: 1 },
        stats: Default::default(),
    };
    rig.d.on_result(&rig.fs, sent).await.expect("sent");
    let text = log.text();
    let ended: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("outbound fax attempt ended"))
        .collect();
    assert_eq!(ended.len(), 2, "{text}");
    for (line, attempt, result) in [
        (
            ended[0],
            &first.attempt_id,
            "status=failed reason=busy pages=0 job_status=queued",
        ),
        (
            ended[1],
            &second.attempt_id,
            "status=succeeded reason= pages=1 job_status=sent",
        ),
    ] {
        assert!(
            line.contains(&format!("job={}", job.id))
                && line.contains("recipient=+15551234")
                && line.contains(&format!("attempt={attempt}"))
                && line.contains(&format!("fax_server={}", rig.fs))
                && line.contains(result),
            "{line}"
        );
    }
}
