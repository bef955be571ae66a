//! The network watchdog on a virtual clock: a hub-mode camera that has not had a welcomed
//! control link for `network_watchdog` (default 5 minutes) asks its shell to restart; a
//! welcome disarms it; standalone cameras never restart for it. No sleeps.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use espcam_camera::{Config, HubConfig, Link, Mode, NETWORK_WATCHDOG};
use support::{Harness, Seen, hub_config};

const WELCOME: &str = r#"{"type":"welcome","camera":"cam-1"}"#;

fn is_reboot(s: &Seen) -> bool {
    matches!(s, Seen::Reboot)
}

/// The hub refuses every connection at once; returns when the camera asked for a restart.
fn hub_down_until_reboot(h: &mut Harness, max: Duration) -> Option<usize> {
    let end = h.now + max;
    loop {
        let left = end.saturating_since(h.now);
        let i = h.run_until(left, |s| is_reboot(s) || matches!(s, Seen::Connect(..)))?;
        match h.log[i].1.clone() {
            Seen::Connect(conn, _) => h.closed(conn),
            _ => return Some(i),
        }
    }
}

#[test]
fn hub_unreachable_since_boot_reboots_after_five_minutes() {
    let mut h = Harness::new(hub_config(3));
    let boot = h.now;
    let i = hub_down_until_reboot(&mut h, Duration::from_secs(600)).expect("reboot");
    assert_eq!(h.log[i].0, boot + NETWORK_WATCHDOG);
    assert!(h.cam.is_rebooting());
    assert!(h.cam.reboot_reason().unwrap().contains("network watchdog"));
    assert_eq!(
        h.cam.poll_timeout(),
        None,
        "inert until the shell restarts it"
    );
    let attempts = h.log[..i]
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Connect(_, Link::Control)))
        .count();
    assert!(attempts >= 10, "kept reconnecting meanwhile: {attempts}");
}

#[test]
fn a_hub_that_never_welcomes_does_not_reset_the_watchdog() {
    // TCP accepted, hello sent, no welcome: every attempt hits the handshake timeout.
    let mut h = Harness::new(hub_config(4));
    let boot = h.now;
    let end = boot + Duration::from_secs(600);
    let i = loop {
        let left = end.saturating_since(h.now);
        let i = h
            .run_until(left, |s| is_reboot(s) || matches!(s, Seen::Connect(..)))
            .expect("reboot");
        match h.log[i].1.clone() {
            Seen::Connect(conn, _) => h.connected(conn),
            _ => break i,
        }
    };
    assert_eq!(h.log[i].0, boot + NETWORK_WATCHDOG);
}

#[test]
fn a_welcome_disarms_it_and_a_loss_restarts_the_count() {
    let mut h = Harness::new(hub_config(5));
    let (control, _) = h.online();
    // Hours online: never a reboot, whatever the stream link does.
    h.advance(Duration::from_secs(2 * 3600));
    assert!(!h.log.iter().any(|(_, s)| is_reboot(s)));

    // The hub goes away; 4 minutes later it welcomes the camera again.
    let lost_at = h.now;
    h.closed(control);
    let back_at = lost_at + Duration::from_secs(4 * 60);
    let conn = loop {
        let i = h
            .run_until(back_at.saturating_since(h.now), |s| {
                matches!(s, Seen::Connect(_, Link::Control))
            })
            .expect("reconnect attempts");
        let Seen::Connect(conn, _) = h.log[i].1 else {
            unreachable!()
        };
        if h.now + Duration::from_secs(31) >= back_at {
            break conn;
        }
        h.closed(conn);
    };
    h.connected(conn);
    h.text(conn, WELCOME);
    let welcomed_at = h.now;
    assert!(welcomed_at < lost_at + NETWORK_WATCHDOG);

    // Lost again at once: the count starts from this loss, not from the first one.
    h.advance(Duration::from_secs(1));
    let lost_again = h.now;
    h.closed(conn);
    let i = hub_down_until_reboot(&mut h, Duration::from_secs(600)).expect("reboot");
    assert_eq!(h.log[i].0, lost_again + NETWORK_WATCHDOG);
}

#[test]
fn the_watchdog_period_is_configurable_and_can_be_off() {
    let mut cfg = hub_config(6);
    let Mode::Hub(HubConfig {
        network_watchdog, ..
    }) = &mut cfg.mode
    else {
        unreachable!()
    };
    *network_watchdog = Some(Duration::from_secs(30));
    let mut h = Harness::new(cfg.clone());
    let boot = h.now;
    let i = hub_down_until_reboot(&mut h, Duration::from_secs(60)).expect("reboot");
    assert_eq!(h.log[i].0, boot + Duration::from_secs(30));

    let Mode::Hub(hub) = &mut cfg.mode else {
        unreachable!()
    };
    hub.network_watchdog = None;
    let mut h = Harness::new(cfg);
    assert_eq!(
        hub_down_until_reboot(&mut h, Duration::from_secs(3600)),
        None,
        "no watchdog, no reboot"
    );
    assert!(!h.cam.is_rebooting());
}

#[test]
fn standalone_mode_never_reboots_for_the_network() {
    let mut h = Harness::new(Config::standalone());
    // No client for an hour, then a client that comes and goes, then none again.
    h.advance(Duration::from_secs(3600));
    let conn = h.cam.handle_client_open(h.now).unwrap();
    h.advance(Duration::from_secs(600));
    h.closed(conn);
    h.advance(Duration::from_secs(3600));
    assert!(!h.log.iter().any(|(_, s)| is_reboot(s)));
    assert!(!h.cam.is_rebooting());
    assert!(h.cam.poll_timeout().is_some());
}
