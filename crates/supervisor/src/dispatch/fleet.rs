//! The fleet: the fax servers as routing sees them (links, channels in use, health, line status, dial
//! prefixes), their links coming and going with what they still hold, and the messages pushed to them.

use super::queue::Pending;
use super::{Dispatcher, State, offer_of, secs};
use protocol::job::{AttemptStatus, JobStatus};
use protocol::{AttemptState, Body, Capabilities, Envelope, FailureReason, JobProgress, Phase};
use std::collections::HashSet;
use store::{Attempt, AttemptFinish, Ending, now_ms};
use tokio::sync::mpsc;

/// A fax server as routing sees it.
#[derive(Debug)]
pub(super) struct FaxServer {
    pub(super) dial_prefixes: Vec<String>,
    pub(super) link: Option<Link>,
    pub(super) caps: Capabilities,
    /// Attempts open on this fax server (offered or active).
    pub(super) open: HashSet<String>,
    pub(super) receiving: u32,
    /// 0..1, an exponentially weighted average of recent results.
    pub(super) health: f64,
    /// What the fax server last said is wrong with its line.
    pub(super) line_status: Option<String>,
    /// Being withdrawn (its credential was revoked), and why: nothing more is offered to it, and a stop it
    /// confirms moves the job on at once.
    pub(super) withdrawn: Option<String>,
    /// When its link last brought a hello or a heartbeat.
    pub(super) last_heard: Option<i64>,
    /// When its current link came up.
    pub(super) linked_at: Option<i64>,
}

/// A fax server's state as the API shows it. The channel figures add up: `sending + receiving + free ==
/// usable`, and `usable <= configured`.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStatus {
    pub online: bool,
    /// Channels its settings give it (its hello).
    pub configured: u32,
    /// Channels its line offers now (fewer while, say, its SIP registration fails).
    pub usable: u32,
    /// Channels taken by attempts offered to it or under way.
    pub sending: u32,
    pub receiving: u32,
    pub free: u32,
    pub open_attempts: usize,
    pub health: f64,
    /// When its link last brought a hello or a heartbeat (this run of the supervisor).
    pub last_heard: Option<i64>,
    /// When its current link came up (a reconnect moves it).
    pub linked_at: Option<i64>,
}

/// The link a fax server is connected by.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) tx: mpsc::UnboundedSender<Envelope>,
    pub(super) generation: u64,
}

impl FaxServer {
    pub(super) fn new(dial_prefixes: Vec<String>, caps: Capabilities) -> Self {
        Self {
            dial_prefixes,
            link: None,
            caps,
            open: HashSet::new(),
            receiving: 0,
            health: 1.0,
            line_status: None,
            withdrawn: None,
            last_heard: None,
            linked_at: None,
        }
    }

    /// Whether new attempts may be offered to it.
    pub(super) fn takes_offers(&self) -> bool {
        self.link.is_some() && self.withdrawn.is_none()
    }

    pub(super) fn free_channels(&self) -> u32 {
        let used = u32::try_from(self.open.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.receiving);
        self.caps.channels.saturating_sub(used)
    }

    /// How specific this fax server's route to `number` is: `None` if it may not dial it, 0 for a default
    /// route, else the length of the longest matching prefix.
    pub(super) fn route_to(&self, number: &str) -> Option<usize> {
        let rule = longest_prefix(&self.dial_prefixes, number)?;
        longest_prefix(&self.caps.reachable_prefixes, number)?;
        Some(rule)
    }
}

/// The length of the longest of `prefixes` that `number` starts with; 0 when there are none (every
/// number), `None` when none matches.
pub(super) fn longest_prefix(prefixes: &[String], number: &str) -> Option<usize> {
    if prefixes.is_empty() {
        return Some(0);
    }
    prefixes
        .iter()
        .filter(|p| number.starts_with(p.as_str()))
        .map(String::len)
        .max()
}

impl State {
    /// A fax server's link is gone: its attempts fall silent from `now` (one silent already keeps when
    /// that began, one in doubt keeps its doubt's end), and the watchdog looks at them at `deadline`.
    pub(super) fn lose_link(&mut self, fax_server_id: &str, now: i64, deadline: i64) {
        if let Some(s) = self.fax_servers.get_mut(fax_server_id) {
            s.link = None;
            s.receiving = 0;
        }
        for open in self
            .attempts
            .values_mut()
            .filter(|a| a.fax_server_id == fax_server_id && !a.in_doubt)
        {
            open.silent_since = Some(open.silent_since.unwrap_or(now));
            open.deadline = deadline;
            open.queried_at = None;
        }
    }
}

impl Dispatcher {
    /// Whether any fax server (online or not) in the client's groupings may dial this number.
    pub fn reachable(&self, client_id: &str, number: &str) -> bool {
        let st = self.lock();
        st.fax_servers.iter().any(|(id, s)| {
            self.access.may_send(client_id, id)
                && longest_prefix(&s.dial_prefixes, number).is_some()
        })
    }

    pub fn set_dial_prefixes(&self, fax_server_id: &str, prefixes: Vec<String>) {
        if let Some(s) = self.lock().fax_servers.get_mut(fax_server_id) {
            s.dial_prefixes = prefixes;
        }
        self.wake.notify_one();
    }

    pub fn register_fax_server(&self, id: &str, prefixes: Vec<String>) {
        self.lock()
            .fax_servers
            .entry(id.to_owned())
            .or_insert_with(|| FaxServer::new(prefixes, Capabilities::default()));
    }

    /// What the fax server last reported as wrong with its line, if anything.
    pub fn line_status(&self, id: &str) -> Option<String> {
        self.lock()
            .fax_servers
            .get(id)
            .and_then(|s| s.line_status.clone())
    }

    /// A snapshot for the API; `configured` is the channel count its hello gave.
    pub fn fax_server_status(&self, id: &str, configured: u32) -> Option<FleetStatus> {
        let st = self.lock();
        st.fax_servers.get(id).map(|s| {
            let usable = s.caps.channels;
            let receiving = s.receiving.min(usable);
            let sending = u32::try_from(s.open.len())
                .unwrap_or(u32::MAX)
                .min(usable - receiving);
            FleetStatus {
                online: s.link.is_some(),
                configured: configured.max(usable),
                usable,
                sending,
                receiving,
                free: s.free_channels(),
                open_attempts: s.open.len(),
                health: s.health,
                last_heard: s.last_heard,
                linked_at: s.link.as_ref().and(s.linked_at),
            }
        })
    }

    pub fn online_fax_servers(&self) -> usize {
        self.lock()
            .fax_servers
            .values()
            .filter(|s| s.link.is_some())
            .count()
    }

    /// Sends a message to a fax server if its link is up; false if it is not.
    pub fn push(&self, fax_server_id: &str, body: Body) -> bool {
        let st = self.lock();
        st.fax_servers
            .get(fax_server_id)
            .and_then(|s| s.link.as_ref())
            .is_some_and(|link| link.tx.send(Envelope::unacked(body)).is_ok())
    }

    /// A fax server's link came up. Returns the link generation (to detect a stale disconnect) and the
    /// attempts the supervisor believes it holds.
    pub async fn connected(
        &self,
        fax_server_id: &str,
        caps: Capabilities,
        tx: mpsc::UnboundedSender<Envelope>,
        in_flight: Vec<AttemptState>,
    ) -> store::Result<(u64, Vec<String>)> {
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            let generation = st.generation;
            let s = st
                .fax_servers
                .entry(fax_server_id.to_owned())
                .or_insert_with(|| FaxServer::new(Vec::new(), Capabilities::default()));
            s.caps = caps;
            s.link = Some(Link { tx, generation });
            s.last_heard = Some(now_ms());
            s.linked_at = s.last_heard;
            generation
        };
        // What the fax server accepted before it left must be in the database before it is compared.
        self.flush_progress().await;
        let open: Vec<Attempt> = self
            .store
            .open_attempts()
            .await?
            .into_iter()
            .filter(|a| a.fax_server_id == fax_server_id)
            .collect();
        let expected: Vec<String> = open.iter().map(|a| a.id.clone()).collect();
        let held: HashSet<String> = in_flight.iter().map(|a| a.attempt_id.clone()).collect();
        for state in in_flight {
            match state.result {
                Some(result) => self.on_result(fax_server_id, result).await?,
                None if expected.contains(&state.attempt_id) => {
                    let attempt_id = state.attempt_id.clone();
                    let progress = JobProgress {
                        attempt_id: state.attempt_id,
                        phase: state.phase,
                        page: None,
                        pages_total: None,
                        bit_rate: None,
                    };
                    self.on_progress(fax_server_id, progress).await?;
                    self.cancel_if_moved_on(fax_server_id, &attempt_id).await?;
                }
                None => {
                    // Not open here any more (abandoned, its job moved on): the fax server must stop.
                    self.push(
                        fax_server_id,
                        Body::JobCancel {
                            attempt_id: state.attempt_id,
                            only_before_dialling: false,
                        },
                    );
                }
            }
        }
        for a in open.into_iter().filter(|a| !held.contains(&a.id)) {
            if a.phase == Phase::Offered {
                // The offer may never have arrived: send the same attempt again.
                match self.store.job(&a.job_id).await? {
                    Some(job) if job.is_finished() || job.cancel_requested => {
                        // Cancelled (or done) while the offer was in the air: it is not sent again.
                        tracing::info!(attempt = %a.id, job = %job.id, "not offering again: the job was cancelled or ended");
                        let finish = AttemptFinish {
                            reason: Some(FailureReason::Cancelled.to_string()),
                            ..AttemptFinish::new(AttemptStatus::Failed)
                        };
                        self.finish(&a, finish, Ending::Open).await?;
                    }
                    Some(job) => {
                        let mut p = self.pending_from_job(&job).await?;
                        p.next_attempt_number = a.number;
                        self.resend_offer(fax_server_id, &a, p).await?;
                    }
                    None => {}
                }
            } else {
                // It took the attempt and no longer has it: no call of it is running.
                self.abandon(&a, "the fax server no longer holds the attempt")
                    .await?;
            }
        }
        self.wake.notify_one();
        Ok((generation, expected))
    }

    /// An attempt its fax server still runs whose job has moved on: a job sent by another attempt has it
    /// withdrawn unless it dials; a job the client cancelled has it stopped.
    pub(super) async fn cancel_if_moved_on(
        &self,
        fax_server_id: &str,
        attempt_id: &str,
    ) -> store::Result<()> {
        let Some(a) = self.store.attempt(attempt_id).await? else {
            return Ok(());
        };
        let Some(job) = self.store.job(&a.job_id).await? else {
            return Ok(());
        };
        if job.is_finished() || job.cancel_requested {
            self.push(
                fax_server_id,
                Body::JobCancel {
                    attempt_id: a.id,
                    only_before_dialling: job.status == JobStatus::Sent,
                },
            );
        }
        Ok(())
    }

    pub(super) async fn resend_offer(
        &self,
        fax_server_id: &str,
        a: &Attempt,
        p: Pending,
    ) -> store::Result<()> {
        let deadline = now_ms() + secs(self.config.deadlines.offered_secs);
        let call_limit = self.call_limit(a, p.pages);
        {
            let mut st = self.lock();
            if let Some(s) = st.fax_servers.get_mut(fax_server_id) {
                s.open.insert(a.id.clone());
            }
            if let Some(open) = st.attempts.get_mut(&a.id) {
                open.in_touch();
                open.deadline = deadline;
            }
        }
        if a.status == AttemptStatus::InDoubt {
            let event = self.attempt_event(
                "job.resumed",
                &a.id,
                serde_json::json!({"phase": "offered"}),
            );
            if self.store.resume_attempt(&a.id, false, &event).await? {
                self.events.committed();
            }
        }
        self.push(
            fax_server_id,
            Body::JobOffer(offer_of(p, a.id.clone(), a.number, call_limit)),
        );
        Ok(())
    }

    /// Begins withdrawing a fax server (its credential was revoked): nothing more is offered to it, and
    /// a stop of one of its attempts that it confirms from now on moves that job on at once. True when
    /// it is linked, so that it can still confirm.
    pub fn begin_withdrawal(&self, fax_server_id: &str, why: &str) -> bool {
        let mut st = self.lock();
        let Some(s) = st.fax_servers.get_mut(fax_server_id) else {
            return false;
        };
        s.withdrawn = Some(why.to_owned());
        s.link.is_some()
    }

    /// Takes a withdrawn fax server's link out at once, whatever its generation. Its attempts it did not
    /// confirm stopping fall silent now: each is shown in doubt and its job moves on only once no call
    /// of it can still be running, as after a lost link (the fax server may be running the call
    /// unreachable, and must not send a fax the next one sends again).
    pub fn unlink(&self, fax_server_id: &str) {
        let now = now_ms();
        self.lock().lose_link(fax_server_id, now, now);
    }

    /// Whether attempts are still open on this fax server.
    pub fn holds_attempts(&self, fax_server_id: &str) -> bool {
        self.lock()
            .fax_servers
            .get(fax_server_id)
            .is_some_and(|s| !s.open.is_empty())
    }

    /// A fax server's link went down; a newer link of the same fax server is left alone. Its attempts
    /// fall silent: after the link grace they are shown in doubt.
    pub async fn disconnected(&self, fax_server_id: &str, generation: u64) -> store::Result<()> {
        let now = now_ms();
        let deadline = now + secs(self.config.deadlines.link_grace_secs);
        let last_heard = {
            let mut st = self.lock();
            let current = st
                .fax_servers
                .get(fax_server_id)
                .and_then(|s| s.link.as_ref())
                .is_some_and(|l| l.generation == generation);
            if current {
                st.lose_link(fax_server_id, now, deadline);
            }
            st.fax_servers.get(fax_server_id).and_then(|s| s.last_heard)
        };
        // The last heartbeat is kept, so that an offline fax server shows when it was last heard of.
        if let Some(at) = last_heard {
            self.store.record_fax_server_seen(fax_server_id, at).await?;
        }
        Ok(())
    }

    pub fn heartbeat(
        &self,
        fax_server_id: &str,
        channels: &[protocol::ChannelState],
        line_status: Option<String>,
    ) {
        let receiving = channels
            .iter()
            .filter(|c| **c == protocol::ChannelState::Receiving)
            .count();
        let usable = channels
            .iter()
            .filter(|c| **c != protocol::ChannelState::Down)
            .count();
        let mut st = self.lock();
        if let Some(s) = st.fax_servers.get_mut(fax_server_id) {
            s.receiving = u32::try_from(receiving).unwrap_or(u32::MAX);
            s.caps.channels = u32::try_from(usable).unwrap_or(u32::MAX);
            s.line_status = line_status;
            s.last_heard = Some(now_ms());
        }
        drop(st);
        self.wake.notify_one();
    }
}
