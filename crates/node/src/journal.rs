//! The fax server's durable memory: attempts it holds, attempt ids it has seen (so an offer repeated after
//! a reconnect is never executed twice), and link messages not yet acknowledged. Written atomically
//! (temporary file, fsync, rename) on every change.

use protocol::{Envelope, JobOffer, JobResult, Phase};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

/// How many finished attempt ids are remembered for de-duplication. The supervisor offers an attempt again
/// only while it is open there, i.e. until its result (or rejection) is acknowledged; the ids kept after that
/// are a safety margin, and the bound keeps the journal (rewritten on every durable change) small.
const SEEN_LIMIT: usize = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    pub offer: JobOffer,
    pub phase: Phase,
    pub result: Option<JobResult>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    pub next_msg_id: u64,
    pub attempts: BTreeMap<String, Held>,
    pub seen: VecDeque<String>,
    pub outbox: BTreeMap<u64, Envelope>,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    data: Mutex<Data>,
}

impl Journal {
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let mut data: Data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(e),
        };
        // Message ids must keep rising even if this file is ever lost: start from the clock.
        let floor = u64::try_from(store_clock_micros()).unwrap_or(0);
        data.next_msg_id = data.next_msg_id.max(floor);
        let journal = Self {
            path,
            data: Mutex::new(data),
        };
        journal.update(|_| ())?;
        Ok(journal)
    }

    /// Applies a change and persists it before returning.
    pub fn update<T>(&self, f: impl FnOnce(&mut Data) -> T) -> std::io::Result<T> {
        self.update_then(f, |_| ())
    }

    /// Applies a change, persists it, and runs `then` on its result before any other change: a message
    /// queued with [`Data::enqueue`] is handed on in `then` in the order of message ids, which the
    /// supervisor relies on (it acknowledges a message at or below the highest id it applied without
    /// applying it).
    pub fn update_then<T>(
        &self,
        f: impl FnOnce(&mut Data) -> T,
        then: impl FnOnce(&T),
    ) -> std::io::Result<T> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut data);
        let bytes = serde_json::to_vec(&*data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let write = || at_rest::write_file(&self.path, &bytes);
        // The write must finish before the caller goes on (that is the point of a journal), but it must
        // not stall the other tasks of a multi-threaded runtime while the disk syncs.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(write)?;
        } else {
            write()?;
        }
        then(&out);
        Ok(out)
    }

    /// Applies a change that need not survive a crash (progress within an attempt); it is persisted with
    /// the next durable change.
    pub fn update_volatile<T>(&self, f: impl FnOnce(&mut Data) -> T) -> T {
        f(&mut self.data.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn read<T>(&self, f: impl FnOnce(&Data) -> T) -> T {
        f(&self.data.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Data {
    pub fn seen(&self, attempt_id: &str) -> bool {
        self.attempts.contains_key(attempt_id) || self.seen.iter().any(|s| s == attempt_id)
    }

    pub fn remember(&mut self, attempt_id: &str) {
        self.seen.push_back(attempt_id.to_owned());
        while self.seen.len() > SEEN_LIMIT {
            self.seen.pop_front();
        }
    }

    /// Queues a message that needs an acknowledgement and returns it with its id.
    pub fn enqueue(&mut self, body: protocol::Body) -> Envelope {
        self.next_msg_id += 1;
        let env = Envelope::new(self.next_msg_id, body);
        self.outbox.insert(env.msg_id, env.clone());
        env
    }
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

    /// Messages queued from several tasks at once reach the link in the order of their ids. (Handed on
    /// after the journal's lock was released, two results finishing together could swap: the supervisor
    /// applied the later one, then acknowledged the earlier one unapplied, and the fax server forgot it.)
    #[test]
    fn queued_messages_are_handed_on_in_id_order() {
        let dir =
            std::env::temp_dir().join(format!("faxhub-journal-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
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
}
