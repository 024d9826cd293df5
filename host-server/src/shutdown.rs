//! The server-wide stop signal.

/// A shutdown signal every task can wait on (closing the channel wakes them all).
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: smol::channel::Sender<()>,
    rx: smol::channel::Receiver<()>,
}

impl Shutdown {
    /// A signal not yet given.
    pub fn new() -> Self {
        let (tx, rx) = smol::channel::bounded(1);
        Self { tx, rx }
    }

    /// Gives the signal.
    pub fn trigger(&self) {
        self.tx.close();
    }

    /// Resolves once the signal is given.
    pub async fn wait(&self) {
        // Nothing is ever sent, so this returns only when the channel is closed.
        let _ = self.rx.recv().await;
    }

    /// Whether the signal was given.
    pub fn is_triggered(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}
