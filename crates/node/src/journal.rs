//! The fax server's durable memory: attempts it holds, attempt ids it has seen (so an offer repeated after
//! a reconnect is never executed twice), and link messages not yet acknowledged.
//!
//! Kept as a snapshot (`journal.json`) and a log of the changes made since (`journal.log`, one JSON line
//! per change, numbered). A durable change appends its lines and syncs the log, so what it costs follows
//! the size of the change, not of everything held (rewriting it all, with up to [`SEEN_LIMIT`] remembered
//! ids, twice per fax, was most of a fax server's own work per fax). When the log passes [`LOG_LIMIT`]
//! bytes the snapshot is written anew (temporary file, fsync, rename) and then the log emptied; a crash
//! between the two leaves changes the snapshot already holds, which opening skips by number. A line cut
//! short by a crash while it was appended is the end of the log (its change was never confirmed).

use protocol::{Body, Envelope, JobOffer, JobResult, Phase};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many finished attempt ids are remembered for de-duplication. The supervisor offers an attempt again
/// only while it is open there, i.e. until its result (or rejection) is acknowledged; the ids kept after that
/// are a safety margin.
const SEEN_LIMIT: usize = 1_000;

/// The log is folded into the snapshot once it is this long.
const LOG_LIMIT: u64 = 1 << 20;

/// Volatile changes waiting for the next durable one are written (not synced) once they are this many bytes.
const PENDING_LIMIT: usize = 256 << 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    pub offer: JobOffer,
    pub phase: Phase,
    pub result: Option<JobResult>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// The number of the last change this state includes.
    #[serde(default)]
    seq: u64,
    pub next_msg_id: u64,
    pub attempts: BTreeMap<String, Held>,
    seen: VecDeque<String>,
    #[serde(skip)]
    seen_index: HashSet<String>,
    pub outbox: BTreeMap<u64, Envelope>,
}

/// One change, as the log keeps it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
enum Change {
    /// An attempt id is remembered (offered here, whatever came of it).
    Remember { attempt_id: String },
    /// An attempt is accepted and held.
    Hold { attempt_id: String, held: Box<Held> },
    /// A held attempt reached a phase.
    Phase { attempt_id: String, phase: Phase },
    /// A held attempt ended with this result.
    Finish {
        attempt_id: String,
        result: Box<JobResult>,
    },
    /// A message waits for its acknowledgement.
    Queue { envelope: Box<Envelope> },
    /// A message was acknowledged (and the attempt whose result it carried is over for good).
    Acked { msg_id: u64 },
}

#[derive(Serialize, Deserialize)]
struct Line<C> {
    seq: u64,
    #[serde(flatten)]
    change: C,
}

impl Data {
    pub fn seen(&self, attempt_id: &str) -> bool {
        self.attempts.contains_key(attempt_id) || self.seen_index.contains(attempt_id)
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Remember { attempt_id } => {
                if self.seen_index.insert(attempt_id.clone()) {
                    self.seen.push_back(attempt_id);
                }
                while self.seen.len() > SEEN_LIMIT {
                    if let Some(old) = self.seen.pop_front() {
                        self.seen_index.remove(&old);
                    }
                }
            }
            Change::Hold { attempt_id, held } => {
                self.attempts.insert(attempt_id, *held);
            }
            Change::Phase { attempt_id, phase } => {
                if let Some(h) = self.attempts.get_mut(&attempt_id) {
                    h.phase = phase;
                }
            }
            Change::Finish { attempt_id, result } => {
                if let Some(h) = self.attempts.get_mut(&attempt_id) {
                    h.phase = Phase::Finished;
                    h.result = Some(*result);
                }
            }
            Change::Queue { envelope } => {
                self.next_msg_id = self.next_msg_id.max(envelope.msg_id);
                self.outbox.insert(envelope.msg_id, *envelope);
            }
            Change::Acked { msg_id } => {
                if let Some(env) = self.outbox.remove(&msg_id)
                    && let Body::JobResult(r) = env.body
                {
                    self.attempts.remove(&r.attempt_id);
                }
            }
        }
    }
}

/// Changes in the making: each is applied to the state at once and written to the log with the change it
/// belongs to (a durable one syncs; a volatile one waits for the next durable one).
pub struct Tx<'a> {
    data: &'a mut Data,
    lines: &'a mut Vec<u8>,
}

impl Tx<'_> {
    pub fn data(&self) -> &Data {
        self.data
    }

    fn record(&mut self, change: Change) {
        let seq = self.data.seq + 1;
        let line = Line {
            seq,
            change: &change,
        };
        // Plain data (strings, numbers, maps with string keys) always serializes.
        if serde_json::to_writer(&mut *self.lines, &line).is_ok() {
            self.lines.push(b'\n');
        }
        self.data.seq = seq;
        self.data.apply(change);
    }

    pub fn remember(&mut self, attempt_id: &str) {
        self.record(Change::Remember {
            attempt_id: attempt_id.to_owned(),
        });
    }

    pub fn hold(&mut self, attempt_id: &str, held: Held) {
        self.record(Change::Hold {
            attempt_id: attempt_id.to_owned(),
            held: Box::new(held),
        });
    }

    pub fn phase(&mut self, attempt_id: &str, phase: Phase) {
        if self
            .data
            .attempts
            .get(attempt_id)
            .is_some_and(|h| h.phase != phase)
        {
            self.record(Change::Phase {
                attempt_id: attempt_id.to_owned(),
                phase,
            });
        }
    }

    pub fn finish(&mut self, attempt_id: &str, result: JobResult) {
        if self.data.attempts.contains_key(attempt_id) {
            self.record(Change::Finish {
                attempt_id: attempt_id.to_owned(),
                result: Box::new(result),
            });
        }
    }

    /// Queues a message that needs an acknowledgement and returns it with its id.
    pub fn enqueue(&mut self, body: Body) -> Envelope {
        let env = Envelope::new(self.data.next_msg_id + 1, body);
        self.record(Change::Queue {
            envelope: Box::new(env.clone()),
        });
        env
    }

    pub fn acked(&mut self, msg_id: u64) {
        if self.data.outbox.contains_key(&msg_id) {
            self.record(Change::Acked { msg_id });
        }
    }
}

#[derive(Debug)]
struct Inner {
    data: Data,
    log: std::fs::File,
    log_len: u64,
    /// Lines of changes applied but not yet written.
    pending: Vec<u8>,
}

impl Inner {
    fn tx(&mut self) -> Tx<'_> {
        Tx {
            data: &mut self.data,
            lines: &mut self.pending,
        }
    }
}

#[derive(Debug)]
pub struct Journal {
    snapshot: PathBuf,
    inner: Mutex<Inner>,
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Journal {
    /// Opens the journal at `path` (the snapshot; the log is beside it, `.log`), replaying the log.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let mut data: Data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(e),
        };
        data.seen_index = data.seen.iter().cloned().collect();
        let log_path = path.with_extension("log");
        replay(&log_path, &mut data)?;
        // Message ids must keep rising even if these files are ever lost: start from the clock.
        let floor = u64::try_from(store_clock_micros()).unwrap_or(0);
        data.next_msg_id = data.next_msg_id.max(floor);
        // What was replayed goes into the snapshot, and the log starts empty (a torn last line with it).
        at_rest::write_file(&path, &snapshot_bytes(&data)?)?;
        let log = at_rest::create_file(&log_path)?;
        log.sync_all()?;
        Ok(Self {
            snapshot: path,
            inner: Mutex::new(Inner {
                data,
                log,
                log_len: 0,
                pending: Vec::new(),
            }),
        })
    }

    /// Applies a change and persists it before returning.
    pub fn update<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> T) -> std::io::Result<T> {
        self.update_then(f, |_| ())
    }

    /// Applies a change, persists it, and runs `then` on its result before any other change: a message
    /// queued with [`Tx::enqueue`] is handed on in `then` in the order of message ids, which the
    /// supervisor relies on (it acknowledges a message at or below the highest id it applied without
    /// applying it).
    pub fn update_then<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> T,
        then: impl FnOnce(&T),
    ) -> std::io::Result<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        let out = f(&mut inner.tx());
        // The write must finish before the caller goes on (that is the point of a journal), but it must
        // not stall the other tasks of a multi-threaded runtime while the disk syncs.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.write(inner, true))?;
        } else {
            self.write(inner, true)?;
        }
        then(&out);
        Ok(out)
    }

    /// Applies a change that need not survive a crash (progress within an attempt, acknowledgements); it
    /// is persisted with the next durable change.
    pub fn update_volatile<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        let out = f(&mut inner.tx());
        if inner.pending.len() >= PENDING_LIMIT
            && let Err(e) = self.write(inner, false)
        {
            tracing::warn!("journal write failed (kept in memory): {e}");
        }
        out
    }

    pub fn read<T>(&self, f: impl FnOnce(&Data) -> T) -> T {
        f(&self.inner.lock().unwrap_or_else(|e| e.into_inner()).data)
    }

    /// Appends the pending lines (synced if `sync`), and folds the log into the snapshot once it is long.
    /// On failure the log is cut back to its last whole line and the lines stay pending.
    fn write(&self, inner: &mut Inner, sync: bool) -> std::io::Result<()> {
        if !inner.pending.is_empty() {
            let appended = inner
                .log
                .write_all(&inner.pending)
                .and_then(|()| if sync { inner.log.sync_data() } else { Ok(()) });
            if let Err(e) = appended {
                let _ = inner.log.set_len(inner.log_len);
                let _ = inner.log.seek(SeekFrom::Start(inner.log_len));
                return Err(e);
            }
            inner.log_len += inner.pending.len() as u64;
            inner.pending.clear();
        } else if sync {
            inner.log.sync_data()?;
        }
        if inner.log_len >= LOG_LIMIT {
            at_rest::write_file(&self.snapshot, &snapshot_bytes(&inner.data)?)?;
            inner.log.set_len(0)?;
            inner.log.rewind()?;
            inner.log_len = 0;
        }
        Ok(())
    }
}

fn snapshot_bytes(data: &Data) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(data).map_err(|e| invalid(e.to_string()))
}

/// Applies the log's changes that come after the snapshot, in order.
fn replay(log_path: &Path, data: &mut Data) -> std::io::Result<()> {
    let bytes = match std::fs::read(log_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    for (n, text) in whole.split(|&b| b == b'\n').enumerate() {
        if text.is_empty() {
            continue;
        }
        let line: Line<Change> = serde_json::from_slice(text)
            .map_err(|e| invalid(format!("{} line {}: {e}", log_path.display(), n + 1)))?;
        if line.seq <= data.seq {
            continue;
        }
        if line.seq != data.seq + 1 {
            return Err(invalid(format!(
                "{} line {}: change {} follows change {}",
                log_path.display(),
                n + 1,
                line.seq,
                data.seq
            )));
        }
        data.seq = line.seq;
        data.apply(line.change);
    }
    Ok(())
}

fn store_clock_micros() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_micros()).unwrap_or(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faxhub-journal-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn offer(attempt_id: &str) -> JobOffer {
        JobOffer {
            attempt_id: attempt_id.to_owned(),
            job_id: format!("job-{attempt_id}"),
            recipient: "+15550100".into(),
            documents: Vec::new(),
            options: Default::default(),
            attempt_number: 1,
            step_down: false,
            call_limit_ms: None,
        }
    }

    fn result(attempt_id: &str) -> JobResult {
        JobResult {
            attempt_id: attempt_id.to_owned(),
            outcome: protocol::Outcome::failed(protocol::FailureReason::Cancelled, None, 0),
            stats: Default::default(),
        }
    }

    /// Messages queued from several tasks at once reach the link in the order of their ids. (Handed on
    /// after the journal's lock was released, two results finishing together could swap: the supervisor
    /// applied the later one, then acknowledged the earlier one unapplied, and the fax server forgot it.)
    #[test]
    fn queued_messages_are_handed_on_in_id_order() {
        let dir = temp_dir();
        let journal = Journal::open(dir.join("journal.json")).expect("journal");
        let link = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        let body = protocol::Body::Ack { ack: 1 };
                        journal
                            .update_then(
                                |d| d.enqueue(body),
                                |env| {
                                    // A slow hand-over must not let a later message overtake.
                                    if env.msg_id % 3 == 0 {
                                        std::thread::sleep(std::time::Duration::from_millis(3));
                                    }
                                    link.lock().expect("link").push(env.msg_id);
                                },
                            )
                            .expect("update");
                    }
                });
            }
        });
        let ids = link.into_inner().expect("link");
        assert_eq!(ids.len(), 100);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What a durable change confirmed is there after a restart, with the volatile changes made before it;
    /// volatile changes made after the last durable one may be lost, and a line torn by a crash is ignored.
    #[test]
    fn a_reopened_journal_holds_every_durable_change() {
        let dir = temp_dir();
        let path = dir.join("journal.json");
        let journal = Journal::open(path.clone()).expect("journal");
        journal
            .update(|d| {
                d.remember("a1");
                d.hold(
                    "a1",
                    Held {
                        offer: offer("a1"),
                        phase: Phase::Accepted,
                        result: None,
                    },
                );
                d.enqueue(Body::JobAccept {
                    attempt_id: "a1".into(),
                })
            })
            .expect("accept");
        journal.update_volatile(|d| d.phase("a1", Phase::Dialling));
        let result_msg = journal
            .update(|d| {
                d.finish("a1", result("a1"));
                d.enqueue(Body::JobResult(result("a1")))
            })
            .expect("result")
            .msg_id;
        // Acknowledged in memory, then written with the next durable change.
        journal.update_volatile(|d| d.acked(result_msg));
        journal
            .update(|d| {
                d.remember("a2");
            })
            .expect("remember");
        journal.update_volatile(|d| d.remember("a3-volatile-only"));
        drop(journal);
        // A crash while appending left half a line.
        let log = dir.join("journal.log");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("log");
        f.write_all(b"{\"seq\":99,\"change\":\"reme").expect("torn");
        drop(f);

        let again = Journal::open(path.clone()).expect("reopen");
        again.read(|d| {
            assert!(d.seen("a1") && d.seen("a2"));
            assert!(!d.seen("a3-volatile-only"));
            assert!(
                !d.attempts.contains_key("a1"),
                "its result was acknowledged"
            );
            assert!(!d.outbox.contains_key(&result_msg));
            assert!(d.next_msg_id >= result_msg);
        });
        // The reopened journal starts from a snapshot holding all of it and an empty log.
        assert_eq!(std::fs::metadata(&log).expect("log").len(), 0);
        drop(again);
        let third = Journal::open(path).expect("third");
        assert!(third.read(|d| d.seen("a1") && d.seen("a2")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A long log is folded into the snapshot; a crash after the snapshot was written but before the log
    /// was emptied replays nothing twice.
    #[test]
    fn the_log_is_folded_into_the_snapshot_and_replayed_once() {
        let dir = temp_dir();
        let path = dir.join("journal.json");
        let journal = Journal::open(path.clone()).expect("journal");
        let mut queued = Vec::new();
        for i in 0..6000 {
            let id = format!("att_{i:032}");
            let env = journal
                .update(|d| {
                    d.remember(&id);
                    d.enqueue(Body::JobAccept { attempt_id: id })
                })
                .expect("update");
            queued.push(env.msg_id);
            if i % 2 == 0 {
                journal.update_volatile(|d| d.acked(env.msg_id));
            }
        }
        let log = dir.join("journal.log");
        assert!(
            std::fs::metadata(&log).expect("log").len() < LOG_LIMIT + 4096,
            "folded"
        );
        let unacked: Vec<u64> = journal.read(|d| d.outbox.keys().copied().collect());
        // The snapshot and the log as a crash right after folding would leave them: the log still holds
        // changes the snapshot has.
        let snapshot = std::fs::read(&path).expect("snapshot");
        drop(journal);
        let log_bytes = std::fs::read(&log).expect("log");
        let stale: Data = serde_json::from_slice(&snapshot).expect("snapshot json");
        assert!(stale.seq > 0);
        let again = Journal::open(path.clone()).expect("reopen");
        let reopened: Vec<u64> = again.read(|d| d.outbox.keys().copied().collect());
        // Every acknowledgement was followed by a durable change, so it was kept with it.
        assert_eq!(reopened, unacked);
        assert_eq!(queued.len() - unacked.len(), 3000);
        assert!(again.read(|d| d.seen(&format!("att_{:032}", 5999))));
        drop(again);
        // Replaying the same log over a snapshot that already has its changes changes nothing.
        std::fs::write(&log, &log_bytes).expect("log back");
        let third = Journal::open(path).expect("third");
        assert_eq!(
            third.read(|d| d.outbox.keys().copied().collect::<Vec<_>>()),
            reopened
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A change missing from the middle of the log is corruption, reported, not skipped.
    #[test]
    fn a_gap_in_the_log_is_an_error() {
        let dir = temp_dir();
        let path = dir.join("journal.json");
        drop(Journal::open(path.clone()).expect("journal"));
        std::fs::write(
            dir.join("journal.log"),
            "{\"seq\":1,\"change\":\"remember\",\"attempt_id\":\"a\"}\n{\"seq\":3,\"change\":\"remember\",\"attempt_id\":\"b\"}\n",
        )
        .expect("log");
        let e = Journal::open(path).expect_err("gap");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("change 3 follows change 1"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
