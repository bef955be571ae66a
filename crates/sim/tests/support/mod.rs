//! Helpers shared by the sim's integration tests.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};

/// Skips messages until the peer's close frame (within 10 s) and returns it; fails the test
/// on an error, an end without a close frame, or a close frame without a code.
pub async fn next_close<S>(ws: &mut S) -> CloseFrame
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(c)))) => return c,
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                other => panic!("expected close, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("no close frame within 10 s")
}
