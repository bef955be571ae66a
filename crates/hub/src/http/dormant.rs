//! [`Dormant`]: a future polled again only after its own waker fired.
//!
//! A viewer's loop `select!`s its frames against signals that fire once in its life (the
//! hub stopping, its credential ending). Polling those on every frame is not free: a waiting
//! `watch::Receiver::changed` future locks its channel's waiter list on every poll (and on
//! drop), and the shutdown channel is one for the whole hub, so every viewer of every camera
//! takes the same lock for every frame it sends, from both worker threads. Wrapped in
//! `Dormant`, such a future is polled once to register, then only when it was woken: a
//! frame costs one uncontended atomic swap on the viewer's own flag instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::{ArcWake, AtomicWaker, waker_ref};

/// Set by the inner future's waker; the task's own waker is woken with it.
#[derive(Debug, Default)]
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for Flag {
    fn wake_by_ref(flag: &Arc<Self>) {
        flag.woken.store(true, Ordering::Release);
        flag.task.wake();
    }
}

/// `F`, polled only on the first poll and after `F`'s waker was woken. Resolves with `F`'s
/// output; like any future, must not be polled after that.
pub(crate) struct Dormant<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// Whether the inner future has been polled (registered its waker) yet.
    armed: bool,
}

impl<F> std::fmt::Debug for Dormant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dormant")
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Dormant<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            flag: Arc::new(Flag::default()),
            armed: false,
        }
    }
}

impl<F: Future> Future for Dormant<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // The task to wake may change between polls (it does not for a tokio task, but the
        // contract allows it): always the latest.
        self.flag.task.register(cx.waker());
        if self.armed && !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.armed = true;
        let flag = self.flag.clone();
        let waker = waker_ref(&flag);
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set, and wakes its last waker when it is.
    struct Gate {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<AtomicWaker>,
    }

    impl Future for Gate {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.waker.register(cx.waker());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready("open")
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_only_after_its_waker_fired() {
        let (polls, open, waker) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicWaker::new()),
        );
        let mut gate = Dormant::new(Gate {
            polls: polls.clone(),
            open: open.clone(),
            waker: waker.clone(),
        });
        let (ticks_tx, mut ticks) = tokio::sync::mpsc::unbounded_channel::<()>();
        // The task is woken 100 times by something else (frames): the gate is not polled.
        for _ in 0..100 {
            ticks_tx.send(()).ok();
            tokio::select! {
                biased;
                _ = &mut gate => panic!("the gate is closed"),
                t = ticks.recv() => assert!(t.is_some()),
            }
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "polled once, to register");
        // Opening it wakes the task through the gate's waker: the next poll reaches it.
        open.store(true, Ordering::SeqCst);
        waker.wake();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), &mut gate).await;
        assert_eq!(got, Ok("open"));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
