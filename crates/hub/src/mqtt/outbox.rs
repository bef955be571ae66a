//! The bounded outbox between the hub and the broker connection.
//!
//! Producers (the event task, the image ticker, command answers) never wait for the broker:
//! they put a message here and return. A message for a topic that already waits replaces
//! it in place — state topics are retained, so only the newest value matters, and an image
//! waiting for a slow broker is replaced by the next one (drop-oldest). The number of
//! distinct topics waiting is bounded too; past it the oldest waiting message is dropped and
//! counted. One pump task takes messages out and hands them to the MQTT client; it alone
//! waits when the broker is slow.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Payload (shared: an image is the camera's frame bytes, not a copy).
    pub payload: Bytes,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Queue>,
    ready: Notify,
    capacity: usize,
    replaced: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<String>,
    waiting: HashMap<String, (Bytes, bool)>,
}

impl Outbox {
    /// An outbox holding at most `capacity` distinct topics.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Queue::default()),
            ready: Notify::new(),
            capacity: capacity.max(1),
            replaced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a message; never waits.
    pub fn push(&self, topic: String, payload: Bytes, retain: bool) {
        {
            let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = q.waiting.get_mut(&topic) {
                *slot = (payload, retain);
                self.replaced.fetch_add(1, Ordering::Relaxed);
            } else {
                if q.order.len() >= self.capacity
                    && let Some(old) = q.order.pop_front()
                {
                    q.waiting.remove(&old);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                q.order.push_back(topic.clone());
                q.waiting.insert(topic, (payload, retain));
            }
        }
        self.ready.notify_one();
    }

    /// Takes the oldest waiting message, if any.
    pub fn try_pop(&self) -> Option<Message> {
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let topic = q.order.pop_front()?;
        let (payload, retain) = q.waiting.remove(&topic)?;
        Some(Message {
            topic,
            payload,
            retain,
        })
    }

    /// Waits for and takes the oldest waiting message.
    pub async fn pop(&self) -> Message {
        loop {
            let notified = self.ready.notified();
            if let Some(m) = self.try_pop() {
                return m;
            }
            notified.await;
        }
    }

    /// Messages waiting now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .order
            .len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages replaced by a newer one for the same topic before they went out.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Messages dropped because too many topics were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_in_place_and_the_bound_drops_the_oldest() {
        let o = Outbox::new(3);
        o.push("a".into(), Bytes::from_static(b"1"), true);
        o.push("b".into(), Bytes::from_static(b"1"), false);
        o.push("a".into(), Bytes::from_static(b"2"), true);
        assert_eq!(o.len(), 2);
        assert_eq!(o.replaced(), 1);
        o.push("c".into(), Bytes::from_static(b"1"), true);
        o.push("d".into(), Bytes::from_static(b"1"), true);
        assert_eq!(o.dropped(), 1);
        let got: Vec<_> = std::iter::from_fn(|| o.try_pop())
            .map(|m| (m.topic, m.payload))
            .collect();
        assert_eq!(
            got,
            vec![
                ("b".to_string(), Bytes::from_static(b"1")),
                ("c".to_string(), Bytes::from_static(b"1")),
                ("d".to_string(), Bytes::from_static(b"1")),
            ]
        );
        assert!(o.is_empty());
    }
}
