//! The hub's one-way layers, as ARCHITECTURE.md states them, checked in its source:
//! `crates/hub/src/state/` (the shared state) imports neither `ingest` nor `http` (nor
//! `server` or `net`, which sit above it), no network or HTTP crate, and builds no JSON.
//! `ingest` and `http` may use `state`; `state` must never use them, so recording, MQTT or a
//! cluster link can subscribe to the state without dragging the web server along.
//!
//! A source check rather than a crate split: the layers share private types, and a reader
//! sees the rule at the top of `state/mod.rs`. It reads code with comments removed, so a doc
//! comment may still *mention* `http`.

use std::path::{Path, PathBuf};

/// Modules of the hub above `state`.
const UPPER_MODULES: [&str; 5] = ["ingest", "http", "server", "net", "cluster"];
/// Crates that are network, HTTP or JSON machinery.
const FORBIDDEN_CRATES: [&str; 10] = [
    "async_nats",
    "axum",
    "hyper",
    "hyper_util",
    "tungstenite",
    "tokio_tungstenite",
    "socket2",
    "rust_embed",
    "serde_json",
    "tower",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read state dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file with `//` comments (doc comments included) and string literals
/// blanked, so only real paths are checked.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
                out.push(' ');
            } else if in_str {
                out.push(' ');
            } else {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every violation of the rule in `code`, as a description.
fn violations(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '!'))
        .filter(|w| !w.is_empty())
        .collect();
    for w in &words {
        let segments: Vec<&str> = w.split("::").collect();
        if let [root, module, ..] = segments[..]
            && matches!(root, "crate" | "super")
            && UPPER_MODULES.contains(&module)
        {
            found.push(format!("imports {w}"));
        }
        if segments.len() > 1 && FORBIDDEN_CRATES.contains(&segments[0]) {
            found.push(format!("uses {w}"));
        }
        if *w == "json!" {
            found.push("builds JSON with json!".into());
        }
    }
    // Grouped imports: `use crate::{http, state}` names the module without `crate::http`.
    for group in code.split("crate::{").skip(1) {
        let inner = group.split('}').next().unwrap_or_default();
        for name in inner.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if UPPER_MODULES.contains(&name) {
                found.push(format!("imports crate::{{{name}}}"));
            }
        }
    }
    found
}

#[test]
fn state_imports_neither_ingest_nor_http() {
    let state = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src/state");
    assert!(
        state.join("mod.rs").is_file(),
        "crates/hub/src/state/mod.rs is missing: update this test and ARCHITECTURE.md together"
    );
    let mut files = Vec::new();
    rust_files(&state, &mut files);
    assert!(
        files.len() >= 5,
        "expected the state layer's files, found {files:?}"
    );
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for v in violations(&code_of(&text)) {
            bad.push(format!("{}: {v}", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "the hub's state layer must not depend on the layers above it or on network/HTTP/JSON crates:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let bad = [
        "use crate::http::ui;",
        "use crate::{config, ingest};",
        "let x = super::http::error::ApiError::X;",
        "use axum::Router;",
        "let v = serde_json::json!({});",
        "let v = json!({});",
        "fn f() -> crate::net::listener::PeerAddr { todo!() }",
    ];
    for b in bad {
        assert!(!violations(&code_of(b)).is_empty(), "missed: {b}");
    }
    let fine = [
        "use crate::config::Config;",
        "use crate::state::camera::Camera;",
        "//! Serialised by the http layer (crate::http::ui).",
        "let s = \"crate::http is above us\";",
        "use serde::Serialize;",
    ];
    for f in fine {
        assert!(violations(&code_of(f)).is_empty(), "false alarm: {f}");
    }
}

/// The cluster service (crates/hub/src/cluster) is built on `state` only: the wiring
/// (`server.rs`) hands its directory view to `http`, so neither imports the other.
#[test]
fn cluster_is_built_on_state_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src/cluster");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(
        files.len() >= 3,
        "expected the cluster module's files, found {files:?}"
    );
    let mut bad = Vec::new();
    for f in &files {
        let code = code_of(&std::fs::read_to_string(f).expect("read source"));
        for layer in ["ingest", "http", "server", "net"] {
            for form in [format!("crate::{layer}::"), format!("super::{layer}::")] {
                if code.contains(&form) {
                    bad.push(format!("{}: imports {form}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the cluster module must build on state only:\n{}",
        bad.join("\n")
    );
}
