//! The events database: rows and thumbnails survive a reopen, queries filter by camera and
//! time, running events are closed by a restart, retention removes by age and count.

#![allow(clippy::unwrap_used)]

use espcam_store::events::{EventEnd, EventQuery, EventStore, NewEvent};

fn start(s: &EventStore, cam: &str, t: i64) -> i64 {
    s.start(&NewEvent {
        camera: cam,
        started_ms: t,
        peak_score: 0.1,
        peak_ms: t,
        zones: &[],
        thumb: Some(b"\xff\xd8first\xff\xd9"),
    })
    .unwrap()
}

#[test]
fn events_round_trip_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let s = EventStore::open(dir.path()).unwrap();
    let a = start(&s, "porch", 1_000);
    let zones = vec!["door".to_string(), "path".to_string()];
    assert!(
        s.end(
            a,
            &EventEnd {
                ended_ms: 9_000,
                last_motion_ms: 4_000,
                peak_score: 0.5,
                peak_ms: 2_000,
                zones: &zones,
                thumb: Some(b"\xff\xd8peak\xff\xd9"),
            }
        )
        .unwrap()
    );
    let b = start(&s, "garden", 20_000);
    let all = s.list(&EventQuery::default()).unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b, a]);
    let e = s.get(a).unwrap().unwrap();
    assert_eq!(
        (e.ended_ms, e.peak_ms, e.peak_score),
        (Some(9_000), 2_000, 0.5)
    );
    assert_eq!(e.zones, zones);
    assert_eq!(s.thumb(a).unwrap().unwrap(), b"\xff\xd8peak\xff\xd9");
    let porch = EventQuery {
        camera: Some("porch".into()),
        ..EventQuery::default()
    };
    assert_eq!(s.list(&porch).unwrap().len(), 1);
    let late = EventQuery {
        from_ms: Some(10_000),
        ..EventQuery::default()
    };
    assert_eq!(s.list(&late).unwrap()[0].id, b, "a ended before 10 s");
    assert_eq!(s.list(&late).unwrap().len(), 1);
    let early = EventQuery {
        to_ms: Some(10_000),
        ..EventQuery::default()
    };
    assert_eq!(s.list(&early).unwrap()[0].id, a);
    assert!(
        s.list(&EventQuery {
            limit: Some(0),
            ..EventQuery::default()
        })
        .unwrap_err()
        .to_string()
        .contains("limit 0 out of range 1..=500")
    );
    drop(s);
    // Reopen: b was running; it is closed at its peak time.
    let s = EventStore::open(dir.path()).unwrap();
    assert_eq!(s.get(b).unwrap().unwrap().ended_ms, Some(20_000));
    assert!(s.delete(a).unwrap());
    assert!(!s.delete(a).unwrap());
    assert_eq!(s.thumb(a).unwrap(), None);
}

#[test]
fn retention_by_age_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = EventStore::open(dir.path()).unwrap();
    for t in 0..10 {
        let id = start(&s, "c", t * 1_000);
        if t < 9 {
            s.end(
                id,
                &EventEnd {
                    ended_ms: t * 1_000 + 500,
                    last_motion_ms: t * 1_000,
                    peak_score: 0.2,
                    peak_ms: t * 1_000,
                    zones: &[],
                    thumb: None,
                },
            )
            .unwrap();
        }
    }
    // Older than 3 s at t = 5 s: events 0 and 1 (started 0 and 1 s).
    assert_eq!(s.apply_retention(5_000, Some(3_500), None).unwrap(), 2);
    // Keep 4: of the 8 left, the 4 oldest finished go; the running one (9) stays.
    assert_eq!(s.apply_retention(5_000, None, Some(4)).unwrap(), 4);
    let left: Vec<i64> = s
        .list(&EventQuery::default())
        .unwrap()
        .iter()
        .map(|e| e.started_ms)
        .collect();
    assert_eq!(left, vec![9_000, 8_000, 7_000, 6_000]);
    // A thumbnail kept from the start stays when the end brings none.
    assert_eq!(s.thumb(9).unwrap().unwrap(), b"\xff\xd8first\xff\xd9");
}
