//! Group commit for submissions: concurrent `POST /v1/jobs` requests are written to the database together,
//! in one transaction with multi-row inserts, and each request is answered once that transaction has
//! committed. Under load this turns many small transactions into a few large ones; alone, a request waits
//! for nothing but its own write.

use store::{Job, NewEvent, NewJob, Store};
use tokio::sync::{mpsc, oneshot};

/// How many submissions one transaction takes at most.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<store::Result<(bool, Vec<Job>)>>;

#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<(Vec<NewJob>, Vec<NewEvent>, Reply)>,
}

impl Intake {
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// Stores one submission; `false` with the earlier jobs when its idempotency key was used before.
    pub async fn submit(
        &self,
        jobs: Vec<NewJob>,
        events: Vec<NewEvent>,
    ) -> store::Result<(bool, Vec<Job>)> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((jobs, events, reply))
            .await
            .map_err(|_| store::Error::NotWritten("the intake has stopped".into()))?;
        answer
            .await
            .map_err(|_| store::Error::NotWritten("the intake dropped a submission".into()))?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<(Vec<NewJob>, Vec<NewEvent>, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (submissions, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|(j, e, r)| ((j, e), r)).unzip();
        match store.insert_submissions(&submissions).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                // Nothing of the batch was stored; every request gets the error (a 500) and may retry.
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(store::Error::NotWritten(message.clone())));
                }
            }
        }
    }
}
