//! Failover between hubs on a virtual clock: a camera given several hubs moves to the next
//! one after `FAILOVER_AFTER` control-link failures in a row, wraps around, and stays on a
//! hub that welcomes it. No sleeps.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use espcam_camera::{FAILOVER_AFTER, HubConfig, Link, Mode};
use support::{Harness, Seen, hub_config};

const WELCOME: &str = r#"{"type":"welcome","camera":"cam-1"}"#;

/// Runs until the next control connect and returns its conn.
fn next_control(h: &mut Harness) -> espcam_camera::ConnId {
    let i = h
        .run_until(Duration::from_secs(120), |s| {
            matches!(s, Seen::Connect(_, Link::Control))
        })
        .expect("a reconnect attempt");
    let Seen::Connect(conn, _) = h.log[i].1 else {
        unreachable!()
    };
    conn
}

#[test]
fn a_camera_with_two_hubs_moves_on_when_its_hub_disappears() {
    let mut cfg = hub_config(7);
    let Mode::Hub(HubConfig { hubs, .. }) = &mut cfg.mode else {
        unreachable!()
    };
    *hubs = 2;
    let mut h = Harness::new(cfg);
    assert_eq!(h.cam.hub_index(), 0);
    let (control, _) = h.online();
    assert_eq!(h.cam.hub_index(), 0);
    // Hub 0 dies: the lost link and the refused reconnects count.
    h.closed(control);
    for _ in 1..FAILOVER_AFTER {
        assert_eq!(h.cam.hub_index(), 0);
        let conn = next_control(&mut h);
        h.closed(conn);
    }
    assert_eq!(h.cam.hub_index(), 1, "moved to the second hub");
    // Hub 1 welcomes it: it stays there through a later single failure.
    let conn = next_control(&mut h);
    h.connected(conn);
    h.text(conn, WELCOME);
    h.advance(Duration::from_secs(1));
    h.closed(conn);
    assert_eq!(h.cam.hub_index(), 1);
    // Both gone: it wraps around to the first hub.
    for _ in 1..FAILOVER_AFTER {
        let conn = next_control(&mut h);
        h.closed(conn);
    }
    assert_eq!(h.cam.hub_index(), 0);
}

#[test]
fn one_hub_never_moves() {
    let mut h = Harness::new(hub_config(8));
    for _ in 0..5 {
        let conn = next_control(&mut h);
        h.closed(conn);
        assert_eq!(h.cam.hub_index(), 0);
    }
}
