//! `espcam user|token|camera`, run as the real binary against a temporary data directory:
//! a user added with its password on stdin can log in (checked through the library on the
//! same file), `token add` prints the token alone on its last line and that token verifies
//! until `token revoke`, and the commands refuse cleanly (exit code, one-line message) on
//! bad input. Also that they work while another process holds the database open, as a
//! running hub does.

// Any failure in these helpers is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use espcam_auth::{Auth, Role};

/// Runs `espcam ARGS --data-dir DIR` with `stdin` piped in (not a terminal, so passwords
/// are read as one line). Runs in `dir` with the `ESPCAM_*` variables cleared so nothing
/// from the environment leaks in.
fn espcam(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_espcam"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .current_dir(dir)
        .env_remove("ESPCAM_DATA_DIR")
        .env_remove("ESPCAM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read stdin may exit before the write: a broken pipe is fine.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got {out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn users_added_from_stdin_can_log_in() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(&espcam(
        d,
        &["user", "add", "alice", "--role", "admin"],
        "correct horse\n",
    ));
    assert!(out.contains("added user alice (admin)"), "{out}");
    // CRLF line endings are stripped too.
    ok(&espcam(
        d,
        &["user", "add", "bob", "--role", "viewer"],
        "bob-password\r\n",
    ));

    let list = ok(&espcam(d, &["user", "list"], ""));
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "ROLE", "CREATED", "LAST", "LOGIN"]);
    assert_eq!(rows[1][..2], ["alice", "admin"]);
    assert_eq!(rows[2][..2], ["bob", "viewer"]);
    assert_eq!(rows[2].last(), Some(&"never"));
    assert_eq!(rows.len(), 3);

    // The passwords work, through the library, on the very file the binary wrote.
    let auth = Auth::open(&d.join("data")).unwrap();
    let alice = auth
        .check_password("alice", "correct horse", 1)
        .unwrap()
        .unwrap();
    assert_eq!(alice.role, Role::Admin);
    assert!(
        auth.check_password("bob", "bob-password", 1)
            .unwrap()
            .is_some()
    );
    assert!(
        auth.check_password("bob", "bob-password\r", 1)
            .unwrap()
            .is_none()
    );

    // passwd and remove, while `auth` (standing in for a running hub) keeps the file open.
    ok(&espcam(d, &["user", "passwd", "bob"], "new-bob-password\n"));
    assert!(
        auth.check_password("bob", "bob-password", 1)
            .unwrap()
            .is_none()
    );
    assert!(
        auth.check_password("bob", "new-bob-password", 1)
            .unwrap()
            .is_some()
    );
    // role: bob becomes an admin, then alice may be demoted, but never the last admin.
    let out = ok(&espcam(d, &["user", "role", "bob", "--role", "admin"], ""));
    assert!(out.contains("bob is now admin"), "{out}");
    let bob = auth
        .check_password("bob", "new-bob-password", 1)
        .unwrap()
        .unwrap();
    assert_eq!(bob.role, Role::Admin);
    ok(&espcam(
        d,
        &["user", "role", "alice", "--role", "viewer"],
        "",
    ));
    let e = fails(&espcam(d, &["user", "role", "bob", "--role", "viewer"], ""));
    assert!(e.contains("bob is the only admin"), "{e}");
    ok(&espcam(
        d,
        &["user", "role", "alice", "--role", "admin"],
        "",
    ));
    ok(&espcam(d, &["user", "remove", "bob"], ""));
    assert!(
        auth.check_password("bob", "new-bob-password", 1)
            .unwrap()
            .is_none()
    );

    // Every change was audited as the command line.
    let log: Vec<(String, String, String)> = auth
        .audit_list(10, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.target))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        log,
        [
            s("cli", "user.remove", "bob"),
            s("cli", "user.role", "alice"),
            s("cli", "user.role", "alice"),
            s("cli", "user.role", "bob"),
            s("cli", "user.passwd", "bob"),
            s("cli", "user.add", "bob"),
            s("cli", "user.add", "alice"),
        ]
    );
}

#[test]
fn user_commands_refuse_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Reading commands do not create a data directory from a typo.
    let e = fails(&espcam(d, &["user", "list"], ""));
    assert!(e.contains("no auth database at"), "{e}");
    assert!(!d.join("data").exists());

    let e = fails(&espcam(d, &["user", "add", "alice", "--role", "admin"], ""));
    assert_eq!(
        e,
        "error: no password on standard input: expected one line\n"
    );
    let e = fails(&espcam(
        d,
        &["user", "add", "alice", "--role", "admin"],
        "short\n",
    ));
    assert_eq!(
        e,
        "error: password is 5 characters long: at least 8 are required\n"
    );
    ok(&espcam(
        d,
        &["user", "add", "alice", "--role", "admin"],
        "long enough\n",
    ));
    let e = fails(&espcam(
        d,
        &["user", "add", "ALICE", "--role", "viewer"],
        "long enough\n",
    ));
    assert!(e.contains("user ALICE already exists"), "{e}");
    let e = fails(&espcam(d, &["user", "remove", "alice"], ""));
    assert!(e.contains("only admin"), "{e}");
    let e = fails(&espcam(d, &["user", "passwd", "nobody"], "long enough\n"));
    assert!(e.contains("no user named nobody"), "{e}");

    // clap refuses bad names and roles with the library's message (exit code 2).
    let out = espcam(d, &["user", "add", "al ice", "--role", "admin"], "x");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contains ' ' at position 3"), "{err}");
    let out = espcam(d, &["user", "add", "carol", "--role", "root"], "x");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected admin or viewer"));
}

#[test]
fn token_is_the_last_line_and_revoke_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(&espcam(
        d,
        &["token", "add", "home-assistant", "--role", "viewer"],
        "",
    ));
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("ecam_") && token.len() == 48, "{out}");
    assert_eq!(out.matches(token).count(), 1, "printed once: {out}");
    assert!(
        out.ends_with(&format!("\n{token}\n")),
        "alone on its line: {out}"
    );

    let auth = Auth::open(&d.join("data")).unwrap();
    let p = auth.verify_bearer(token, 1).unwrap().unwrap();
    assert_eq!(p.role, Role::Viewer);
    assert_eq!(p.actor.to_string(), "token:home-assistant");

    let list = ok(&espcam(d, &["token", "list"], ""));
    assert!(!list.contains(token), "{list}");
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["home-assistant", "viewer"]);

    let e = fails(&espcam(
        d,
        &["token", "add", "home-assistant", "--role", "admin"],
        "",
    ));
    assert!(e.contains("already exists"), "{e}");

    let out = ok(&espcam(d, &["token", "revoke", "home-assistant"], ""));
    assert_eq!(out, "revoked token home-assistant\n");
    // Refused from the next check on, by the process that had the file open all along.
    assert!(auth.verify_bearer(token, 2).unwrap().is_none());
    let e = fails(&espcam(d, &["token", "revoke", "home-assistant"], ""));
    assert_eq!(e, "error: no token named home-assistant\n");
    let list = ok(&espcam(d, &["token", "list"], ""));
    assert!(list.starts_with("no tokens in "), "{list}");
}

#[test]
fn pending_cameras_can_be_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let auth = Auth::open(&d.join("data")).unwrap();
    let porch = espcam_proto::CameraId::new("porch").unwrap();
    auth.pairing_check(&porch, "porch-secret", None, 1).unwrap();
    let list = ok(&espcam(d, &["camera", "list"], ""));
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["porch", "pending"]);
    ok(&espcam(d, &["camera", "accept", "porch"], ""));
    assert_eq!(
        auth.pairing_check(&porch, "porch-secret", None, 2).unwrap(),
        espcam_auth::PairingDecision::Accepted
    );
    let e = fails(&espcam(d, &["camera", "accept", "garage"], ""));
    assert!(e.contains("camera garage is not waiting"), "{e}");
}
