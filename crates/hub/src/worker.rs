//! One dedicated thread behind a bounded queue, for services whose work blocks (the
//! recorder's fsyncs, the motion decoder): async tasks hand it jobs with [`Worker::send`],
//! which never waits — a full queue is the caller's to count — and [`Worker::stop`] drops the
//! sender, so the thread drains what is queued, finishes, and is joined.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

/// Why [`Worker::try_send`] did not queue a job.
enum Refused {
    Full,
    Stopped,
}

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
        self.try_send(job).is_ok()
    }

    /// Queues `job` without waiting, or gives it back with the reason.
    fn try_send(&self, job: J) -> Result<(), (J, Refused)> {
        match &*self.queue.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(q) => q.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) => (j, Refused::Full),
                TrySendError::Disconnected(j) => (j, Refused::Stopped),
            }),
            None => Err((job, Refused::Stopped)),
        }
    }

    /// Queues a job that must not be dropped (a camera to follow): while the queue is full
    /// it tries again every `retry`. `false` once the worker stopped or `stop` changed.
    pub(crate) async fn send_when_room(
        &self,
        mut job: J,
        retry: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            match self.try_send(job) {
                Ok(()) => return true,
                Err((_, Refused::Stopped)) => return false,
                Err((j, Refused::Full)) => job = j,
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.changed() => return false,
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A job that must not be lost waits for room in a full queue instead of being
    /// dropped (the recorder's "follow this camera": dropped, a camera that appeared while
    /// its writer was behind went unrecorded).
    #[tokio::test]
    async fn a_job_that_must_not_be_lost_waits_for_room() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let worker = Worker::spawn("test-worker", 1, move |rx: Receiver<u32>| {
            // Blocked until the test opens the gate: the queue stays full meanwhile.
            let _ = gate_rx.recv();
            for job in rx {
                let _ = done_tx.send(job);
            }
        });
        // The thread may or may not have taken job 1 yet; fill the queue either way.
        assert!(worker.send(1));
        while worker.send(2) {}
        assert!(!worker.send(3), "the queue is full");
        let (_stop_tx, mut stop) = watch::channel(false);
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let _ = gate_tx.send(());
        });
        let queued = worker
            .send_when_room(7, Duration::from_millis(10), &mut stop)
            .await;
        assert!(queued, "queued once the thread made room");
        let _ = opener.join();
        let seen: Vec<u32> = (0..3)
            .filter_map(|_| done_rx.recv_timeout(Duration::from_secs(5)).ok())
            .collect();
        assert!(seen.contains(&7), "job 7 was done: {seen:?}");
        let stopper = std::thread::spawn(move || worker.stop());
        let _ = stopper.join();
    }

    /// It gives up when told to stop, and at once when the worker is stopped.
    #[tokio::test]
    async fn waiting_for_room_ends_on_stop() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let worker = Worker::spawn("test-worker", 1, move |rx: Receiver<u32>| {
            let _ = gate_rx.recv();
            for _ in rx {}
        });
        while worker.send(1) {}
        let (stop_tx, mut stop) = watch::channel(false);
        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = stop_tx.send(true);
        });
        let queued = worker
            .send_when_room(2, Duration::from_millis(10), &mut stop)
            .await;
        assert!(!queued);
        let _ = t.await;
        let _ = gate_tx.send(());
        let worker = std::thread::spawn(move || {
            worker.stop();
            worker
        })
        .join();
        let Ok(worker) = worker else {
            panic!("stop panicked")
        };
        let (_tx, mut stop) = watch::channel(false);
        assert!(
            !worker
                .send_when_room(3, Duration::from_millis(10), &mut stop)
                .await
        );
    }
}
