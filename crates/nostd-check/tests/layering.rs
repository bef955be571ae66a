//! The workspace's dependency direction, as ARCHITECTURE.md states it, checked against
//! `cargo metadata`: `proto` depends on no other espcam crate; `camera` only on `proto`;
//! `store`, `auth` and `record` only on `proto`; `sim` on `camera` and `proto`; `hub` on
//! `camera` (its backoff), `proto`, `record` and `store` (the sim only for its tests);
//! `motion` on none; no async runtime, web framework or esp-idf crate appears under `proto`,
//! `camera` or `motion` (the no_std proof in `proof.rs` catches `std` itself); and `auth`
//! uses no async runtime or HTTP framework.

use std::collections::BTreeMap;
use std::process::Command;

/// (package, kind) → its dependencies' names, from `cargo metadata --no-deps`.
fn dependencies() -> BTreeMap<(String, String), Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut deps: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        for d in p["dependencies"].as_array().expect("dependencies") {
            let kind = d["kind"].as_str().unwrap_or("normal").to_string();
            deps.entry((name.clone(), kind))
                .or_default()
                .push(d["name"].as_str().expect("dep name").to_string());
        }
    }
    deps
}

fn in_repo(deps: &BTreeMap<(String, String), Vec<String>>, pkg: &str, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = deps
        .get(&(pkg.to_string(), kind.to_string()))
        .into_iter()
        .flatten()
        .filter(|d| d.starts_with("espcam"))
        .cloned()
        .collect();
    v.sort();
    v
}

#[test]
fn dependencies_point_one_way() {
    let deps = dependencies();
    let n = "normal";
    assert_eq!(in_repo(&deps, "espcam-proto", n), Vec::<String>::new());
    assert_eq!(in_repo(&deps, "espcam-camera", n), ["espcam-proto"]);
    assert_eq!(in_repo(&deps, "espcam-store", n), ["espcam-proto"]);
    assert_eq!(in_repo(&deps, "espcam-auth", n), ["espcam-proto"]);
    assert_eq!(in_repo(&deps, "espcam-record", n), ["espcam-proto"]);
    assert_eq!(
        in_repo(&deps, "espcam-sim", n),
        ["espcam-camera", "espcam-proto"]
    );
    assert_eq!(
        in_repo(&deps, "espcam-hub", n),
        [
            "espcam-auth",
            "espcam-camera",
            "espcam-motion",
            "espcam-proto",
            "espcam-record",
            "espcam-store"
        ]
    );
    assert_eq!(in_repo(&deps, "espcam-motion", n), Vec::<String>::new());
    // The benchmark measures the hub binary; it must not link the hub library.
    assert_eq!(in_repo(&deps, "espcam-bench", n), ["espcam-proto"]);
}

#[test]
fn no_runtime_or_framework_under_the_portable_crates() {
    let deps = dependencies();
    let forbidden = [
        "tokio",
        "axum",
        "hyper",
        "tungstenite",
        "esp-idf",
        "embassy",
        "std",
    ];
    for pkg in ["espcam-proto", "espcam-camera", "espcam-motion"] {
        for d in deps
            .get(&(pkg.to_string(), "normal".to_string()))
            .into_iter()
            .flatten()
        {
            assert!(
                !forbidden.iter().any(|f| d.contains(f)),
                "{pkg} depends on {d}: the portable crates must stay free of runtimes, frameworks and esp-idf"
            );
        }
    }
}

#[test]
fn auth_has_no_runtime_or_http_framework() {
    let deps = dependencies();
    let forbidden = ["tokio", "axum", "hyper", "tungstenite", "tower", "http"];
    for d in deps
        .get(&("espcam-auth".to_string(), "normal".to_string()))
        .into_iter()
        .flatten()
    {
        assert!(
            !forbidden.iter().any(|f| d.contains(f)),
            "espcam-auth depends on {d}: its decisions must stay testable without a server"
        );
    }
}
