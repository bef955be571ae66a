//! The seed-002 Python client's logic (`examples/ap_client.py`: every binary message decoded
//! as a JPEG, in pure Python with `websocket-client`) run against the standalone virtual
//! camera. Skipped with a printed reason when python3 or websocket-client is missing, unless
//! `ESPCAM_REQUIRE_PYTHON=1` (CI), where that is a failure.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use espcam_proto::{Resolution, Settings};
use espcam_sim::{ApCamera, ApCameraConfig};

fn python_ready() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import websocket"])
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 cannot import websocket-client (pip install websocket-client): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_python_client_decodes_every_frame() {
    if let Err(why) = python_ready() {
        if std::env::var("ESPCAM_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("ESPCAM_REQUIRE_PYTHON=1 but {why}");
        }
        eprintln!("SKIPPED seed_python_client_decodes_every_frame: {why}");
        return;
    }
    let cfg = ApCameraConfig {
        settings: Settings {
            resolution: Resolution::Qvga,
            ..Settings::default()
        },
        ..ApCameraConfig::default()
    };
    let cam = ApCamera::bind("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let url = cam.url().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ap_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(url)
            .args(["--frames", "40", "--timeout", "30"])
            .args([
                "--command",
                r#"{"cmd":"resolution","value":"QQVGA","id":3}"#,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["frames"], 40);
    assert_eq!(summary["invalid"], serde_json::json!([]));
    assert_eq!(summary["pong"], true);
    assert_eq!(summary["texts"]["welcome"], 1);
    assert_eq!(summary["texts"]["stats"], 1);
    let ack = &summary["acks"][0];
    assert_eq!(
        (ack["id"].clone(), ack["ok"].clone()),
        (3.into(), true.into()),
        "{summary}"
    );
    // Frames before the command are 320x240, after it 160x120.
    assert!(
        summary["sizes"]["320x240"].as_u64().unwrap() >= 10,
        "{summary}"
    );
    assert!(
        summary["sizes"]["160x120"].as_u64().unwrap() >= 10,
        "{summary}"
    );
    assert_eq!(summary["sizes"].as_object().unwrap().len(), 2, "{summary}");
    cam.stop().await;
}
