//! Frame taps: how anything inside the hub follows a camera's frames.
//!
//! Viewers and internal consumers (recorder, motion detector, other hubs) want the same
//! frames with different policies, so the policy is explicit and chosen by the subscriber:
//!
//! - [`DropPolicy::Newest`]: a viewer. When it is behind it skips straight to the newest
//!   frame; it never holds more than the frame it is working on plus the shared newest one.
//! - [`DropPolicy::Every`]: a recorder. It sees every frame, in order, through a bounded
//!   queue of `capacity` frames; when it falls further behind, ingest does not wait: the
//!   frames that did not fit are counted and reported with the next frame it gets.
//!
//! Either way ingest never waits for a tap, and a frame is an `Arc<Frame>`: no tap copies the
//! JPEG bytes.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::state::camera::Frame;

/// What a tap does when frames come faster than it takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPolicy {
    /// Skip to the newest frame (viewers). The first frame is the newest one already
    /// received, if any, so a new viewer sees a picture at once.
    Newest,
    /// Every frame in order, up to `capacity` queued; beyond that, frames are missed and
    /// counted (recorders). Starts with the next frame received.
    Every {
        /// Frames queued before ingest starts counting misses (at least 1).
        capacity: usize,
    },
}

/// A frame from a tap, with how many frames this tap missed just before it.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// The frame (shared, never copied).
    pub frame: Arc<Frame>,
    /// Frames of this camera received between the previous frame this tap returned and this
    /// one that the tap did not get (skipped by `Newest`, dropped by a full `Every`).
    pub missed: u64,
}

/// A subscription to one camera's frames. See the module docs.
#[derive(Debug)]
pub struct FrameTap {
    inner: Inner,
    /// Index of the last frame returned, to compute `missed`.
    last_index: Option<u64>,
}

#[derive(Debug)]
enum Inner {
    Newest(watch::Receiver<Option<Arc<Frame>>>),
    Every(mpsc::Receiver<Arc<Frame>>),
}

impl FrameTap {
    pub(super) fn newest(mut rx: watch::Receiver<Option<Arc<Frame>>>) -> Self {
        // Hand out the current frame first.
        rx.mark_changed();
        Self {
            inner: Inner::Newest(rx),
            last_index: None,
        }
    }

    pub(super) fn every(rx: mpsc::Receiver<Arc<Frame>>) -> Self {
        Self {
            inner: Inner::Every(rx),
            last_index: None,
        }
    }

    /// The next frame under this tap's policy. `None` once the camera is gone for good
    /// (removed from the hub). Cancel-safe: dropping the future loses no frame.
    pub async fn next(&mut self) -> Option<Tapped> {
        let frame = match &mut self.inner {
            Inner::Newest(rx) => loop {
                rx.changed().await.ok()?;
                if let Some(f) = rx.borrow_and_update().clone() {
                    break f;
                }
            },
            Inner::Every(rx) => rx.recv().await?,
        };
        Some(self.tapped(frame))
    }
}

/// [`FrameTap::try_next`] on a tap whose camera is gone for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapClosed;

impl FrameTap {
    /// The next frame if one is waiting, without waiting (for a thread that drains its taps
    /// on its own schedule: no waker is registered, so ingest wakes nobody per frame).
    /// `Ok(None)`: nothing new yet. `Err(TapClosed)`: the camera is gone for good.
    pub fn try_next(&mut self) -> Result<Option<Tapped>, TapClosed> {
        let frame = match &mut self.inner {
            Inner::Newest(rx) => {
                if !rx.has_changed().map_err(|_| TapClosed)? {
                    return Ok(None);
                }
                match rx.borrow_and_update().clone() {
                    Some(f) => f,
                    None => return Ok(None),
                }
            }
            Inner::Every(rx) => match rx.try_recv() {
                Ok(f) => f,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(None),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(TapClosed),
            },
        };
        Ok(Some(self.tapped(frame)))
    }

    fn tapped(&mut self, frame: Arc<Frame>) -> Tapped {
        let missed = match self.last_index {
            Some(last) => frame.index.saturating_sub(last).saturating_sub(1),
            None => 0,
        };
        self.last_index = Some(frame.index);
        Tapped { frame, missed }
    }
}

/// Ingest's side of an `Every` tap. A frame that does not fit is simply not queued: the
/// tap sees the gap in frame indices and reports it as `missed`.
#[derive(Debug)]
pub(super) struct EverySender(pub(super) mpsc::Sender<Arc<Frame>>);

impl EverySender {
    /// Offers a frame without waiting. `false` when the tap is gone and can be forgotten.
    pub(super) fn offer(&self, frame: &Arc<Frame>) -> bool {
        !matches!(
            self.0.try_send(frame.clone()),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use bytes::Bytes;

    fn frame(index: u64) -> Arc<Frame> {
        let mut f = Frame::new(Bytes::from_static(b"\xff\xd8\xff\xd9"), 0, None, index);
        f.index = index;
        Arc::new(f)
    }

    #[test]
    fn try_next_on_every_takes_what_is_queued_counts_gaps_and_sees_the_end() {
        let (tx, rx) = mpsc::channel(4);
        let mut tap = FrameTap::every(rx);
        assert_eq!(tap.try_next().map(|t| t.is_none()), Ok(true), "nothing yet");
        let sender = EverySender(tx);
        for i in [1, 2, 5] {
            assert!(sender.offer(&frame(i)));
        }
        let got: Vec<(u64, u64)> = std::iter::from_fn(|| tap.try_next().unwrap())
            .map(|t| (t.frame.index, t.missed))
            .collect();
        assert_eq!(got, vec![(1, 0), (2, 0), (5, 2)]);
        drop(sender);
        assert_eq!(tap.try_next().map(|t| t.is_none()), Err(TapClosed));
    }

    #[test]
    fn try_next_on_newest_gives_the_newest_once_and_sees_the_end() {
        let (tx, rx) = watch::channel(None);
        let mut tap = FrameTap::newest(rx);
        assert_eq!(
            tap.try_next().map(|t| t.is_none()),
            Ok(true),
            "no frame yet"
        );
        tx.send_replace(Some(frame(3)));
        tx.send_replace(Some(frame(7)));
        let t = tap.try_next().unwrap().unwrap();
        assert_eq!((t.frame.index, t.missed), (7, 0));
        assert_eq!(
            tap.try_next().map(|t| t.is_none()),
            Ok(true),
            "seen already"
        );
        tx.send_replace(Some(frame(9)));
        assert_eq!(tap.try_next().unwrap().unwrap().missed, 1);
        drop(tx);
        assert_eq!(tap.try_next().map(|t| t.is_none()), Err(TapClosed));
    }
}
