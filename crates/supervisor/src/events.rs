//! The application's event bus: whoever commits events (a job submitted, an attempt's progress, a fax
//! received, a settings change) says so here, and whoever follows them (SSE streams, webhook delivery)
//! wakes and reads the new rows from the store. The bus carries no events, only the news that there are
//! new ones, so a slow listener that misses a signal loses nothing: it reads from its last sequence.

use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<()>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(64).0,
        }
    }
}

impl EventBus {
    /// Events were committed.
    pub fn committed(&self) {
        // Nobody listening is fine: a listener reads from its last sequence when it starts.
        let _ = self.tx.send(());
    }

    /// A receiver told of every commit from now on (a lagged one is told it lagged, and reads anyway).
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.tx.subscribe()
    }
}
