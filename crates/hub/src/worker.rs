//! One dedicated thread behind a bounded queue, for services whose work blocks (the
//! recorder's fsyncs, the motion decoder): async tasks hand it jobs with [`Worker::send`],
//! which never waits — a full queue is the caller's to count — and [`Worker::stop`] drops the
//! sender, so the thread drains what is queued, finishes, and is joined.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

/// A worker thread and its queue.
pub(crate) struct Worker<J> {
    /// Taken out by [`Worker::stop`]: the thread's `recv` then ends.
    queue: Mutex<Option<SyncSender<J>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    name: &'static str,
}

impl<J> std::fmt::Debug for Worker<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).finish()
    }
}

impl<J: Send + 'static> Worker<J> {
    /// Starts thread `name` running `run` on a queue of `capacity` jobs. If the thread
    /// cannot be started, the service is logged as unavailable and `send` keeps failing.
    pub(crate) fn spawn(
        name: &'static str,
        capacity: usize,
        run: impl FnOnce(Receiver<J>) + Send + 'static,
    ) -> Self {
        let (tx, rx) = sync_channel(capacity);
        let thread = match std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(rx))
        {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("{name} unavailable: could not start its thread: {e}");
                None
            }
        };
        Self {
            queue: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
            name,
        }
    }

    /// Queues `job` without waiting; `false` when the queue is full or the worker stopped.
    pub(crate) fn send(&self, job: J) -> bool {
        match &*self.queue.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(q) => q.try_send(job).is_ok(),
            None => false,
        }
    }

    /// Stops taking jobs and waits until the thread has done the queued ones (blocking; call
    /// from `spawn_blocking`).
    pub(crate) fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::warn!("the {} thread panicked", self.name);
        }
    }
}
