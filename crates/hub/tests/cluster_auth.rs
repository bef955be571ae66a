//! Cluster mode's NATS credentials and TLS options (`[cluster]` token, credentials,
//! tls_ca, tls_cert/tls_key), each against a real Debian `nats-server -js` configured for
//! it by a config file written here: hubs given the right credential share a camera; a hub
//! given a wrong one stops at start with one error line naming the NATS URL and the cause
//! (never hangs). The certificates are made here with rcgen, the NATS JWTs signed here
//! with nkeys. Skipped with a message without `nats-server` unless `ESPCAM_REQUIRE_TOOLS=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use common::nats::{Nats, require_nats};
use common::{TestHub, decode, next_binary, ws};
use espcam_hub::Config;
use espcam_hub::cluster::ClusterConfig;
use espcam_proto::{CameraId, Resolution};
use espcam_sim::{HubCamera, HubCameraConfig};
use serde_json::{Value, json};

/// One NATS server and a few hubs at a time (see tests/cluster.rs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn hub_config(dir: &Path, url: &str, node: &str) -> Config {
    let mut c = Config::for_tests(dir);
    let mut cluster = ClusterConfig::new(url, node);
    cluster.ttl = Duration::from_secs(3);
    c.cluster = Some(cluster);
    c
}

fn with_cluster(mut c: Config, f: impl FnOnce(&mut ClusterConfig)) -> Config {
    if let Some(cl) = &mut c.cluster {
        f(cl);
    }
    c
}

/// Starts `nats-server -js` with the config file `conf` (holding `text`).
fn nats_with_config(bin: &Path, store: &Path, text: &str) -> Nats {
    let conf = store.join("nats.conf");
    std::fs::write(&conf, text).unwrap();
    Nats::start_with(bin, store, &["-c", conf.to_str().unwrap()])
}

/// A camera on hub `a`, and hub `b` lists it as held by hub-a (bounded: 20 s).
async fn shared_camera(a: &TestHub, b: &TestHub) -> espcam_sim::CameraHandle {
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    cfg.fps = 5;
    let cam = HubCamera::spawn(cfg);
    for _ in 0..400 {
        let r = b.get("/api/cameras").await;
        if let Some(c) = r
            .json()
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == "cam-1").cloned())
            && c["online"] == true
        {
            assert_eq!(c["node"], "hub-a", "{c}");
            assert_eq!(c["source"], "remote", "{c}");
            return cam;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "hub B never listed hub A's camera: {}",
        b.get("/api/cameras").await.text()
    );
}

/// A hub with this configuration must stop at start (within 15 s) with a cluster error;
/// returns its one-line message.
async fn refused(config: Config) -> String {
    let listeners = espcam_hub::Listeners::bind(&config).await.unwrap();
    let run = espcam_hub::run(config, listeners, std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the hub neither joined nor failed within 15 s: it hangs")
        .expect_err("the hub started although NATS refused it");
    let line = err.to_string();
    eprintln!("refused as expected: {line}");
    assert!(
        matches!(err, espcam_hub::RunError::Cluster(_)),
        "not a cluster error: {line}"
    );
    assert!(!line.contains('\n'), "more than one line: {line}");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_token_is_used() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let store = tmp();
    let nats = nats_with_config(
        &bin,
        store.path(),
        "authorization {\n  token: \"tok-s3cret-1234\"\n}\n",
    );
    let url = nats.url();
    let token = |dir: &Path, node: &str, t: &str| {
        let t = t.to_string();
        with_cluster(hub_config(dir, &url, node), |c| c.token = Some(t))
    };
    let (da, db, dc) = (tmp(), tmp(), tmp());
    let a = TestHub::start(token(da.path(), "hub-a", "tok-s3cret-1234")).await;
    let b = TestHub::start(token(db.path(), "hub-b", "tok-s3cret-1234")).await;
    let _cam = shared_camera(&a, &b).await;

    let line = refused(token(dc.path(), "hub-c", "wrong-token")).await;
    assert!(line.contains(&url), "{line}");
    assert!(
        line.contains("wrong or missing credentials") && line.contains("authorization"),
        "{line}"
    );
    assert!(!line.contains("wrong-token"), "the token is logged: {line}");
    // No credential at all: refused the same way.
    let dd = tmp();
    let line = refused(hub_config(dd.path(), &url, "hub-d")).await;
    assert!(line.contains("wrong or missing credentials"), "{line}");
    a.stop().await;
    b.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM files in
/// `dir`: (ca, server cert, server key, client cert, client key).
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("{name} {usage:?}"));
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        vec!["hub.espcam.test".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server-key.pem", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
    }
}

/// TLS to NATS with mutual TLS: hubs trusting the server's CA (`tls_ca`) and presenting a
/// client certificate (`tls_cert`, `tls_key`) share a camera and its frames; a hub with the
/// wrong CA, or without the client certificate the server verifies, or with no TLS option
/// at all, is refused with the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_tls_with_client_certificates() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let store = tmp();
    let pki = make_pki(store.path(), "right");
    let other = make_pki(store.path(), "other");
    let conf = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n  timeout: 2\n}}\n",
        pki.server_cert, pki.server_key, pki.ca
    );
    let nats = nats_with_config(&bin, store.path(), &conf);
    let url = nats.url();
    let tls = |dir: &Path, node: &str, ca: &Path, client: Option<(&Path, &Path)>| {
        let ca = ca.to_path_buf();
        let client = client.map(|(c, k)| (c.to_path_buf(), k.to_path_buf()));
        with_cluster(hub_config(dir, &url, node), move |c| {
            c.tls = true;
            c.tls_ca = Some(ca);
            c.tls_client = client;
        })
    };
    let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let (da, db) = (tmp(), tmp());
    let a = TestHub::start(tls(da.path(), "hub-a", &pki.ca, client)).await;
    let b = TestHub::start(tls(db.path(), "hub-b", &pki.ca, client)).await;
    let _cam = shared_camera(&a, &b).await;
    // The frames cross too.
    let mut view_b = ws(&b.ws_url("/ws/view/cam-1")).await;
    let f = tokio::time::timeout(Duration::from_secs(20), next_binary(&mut view_b))
        .await
        .expect("no relayed frame over TLS within 20 s");
    assert_eq!(decode(&f), (160, 120));

    let dc = tmp();
    let line = refused(tls(dc.path(), "hub-c", &other.ca, client)).await;
    assert!(line.contains(&url), "{line}");
    assert!(line.contains("TLS failed"), "{line}");
    assert!(line.contains("UnknownIssuer"), "{line}");
    let dd = tmp();
    let line = refused(tls(dd.path(), "hub-d", &pki.ca, None)).await;
    assert!(line.contains(&url) && line.contains("TLS failed"), "{line}");
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    // No TLS option: the server asks for TLS, and the system's roots do not know its CA.
    let de = tmp();
    let line = refused(hub_config(de.path(), &url, "hub-e")).await;
    assert!(line.contains(&url) && line.contains("TLS failed"), "{line}");

    drop(view_b);
    a.stop().await;
    b.stop().await;
}

/// A NATS JWT: `claims` (with `iss`, `sub`, `iat`, `jti` added) signed by `signer`.
fn jwt(signer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": format!("{name}-{iat}"),
        "iat": iat,
        "iss": signer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = b64(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{body}");
    let sig = signer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64(&sig))
}

/// A `.creds` file for a user of `account`.
fn creds(dir: &Path, file: &str, account: &nkeys::KeyPair) -> PathBuf {
    let user = nkeys::KeyPair::new_user();
    let user_jwt = jwt(
        account,
        &user.public_key(),
        "espcam-hub",
        json!({"type": "user", "version": 2, "pub": {}, "sub": {},
               "subs": -1, "data": -1, "payload": -1}),
    );
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    );
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

/// A `.creds` file against a server in operator mode (memory resolver preloaded with the
/// account's JWT, JetStream enabled for the account): hubs given a user of that account
/// share a camera; a hub given a user of an account the server does not know is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_credentials_file_is_used() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let store = tmp();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "espcam-test-operator",
        json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "espcam",
        json!({"type": "account", "version": 2, "limits": {
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
            "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}}),
    );
    // JetStream in operator mode needs a system account (its own JWT, no limits).
    let system = nkeys::KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let operator_file = store.path().join("operator.jwt");
    std::fs::write(&operator_file, &operator_jwt).unwrap();
    let conf = format!(
        "operator: {operator_file:?}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {acc}: \"{account_jwt}\"\n  {sys}: \"{system_jwt}\"\n}}\n",
        acc = account.public_key(),
        sys = system.public_key(),
    );
    let nats = nats_with_config(&bin, store.path(), &conf);
    let url = nats.url();
    let good = creds(store.path(), "hub.creds", &account);
    let stranger = creds(
        store.path(),
        "stranger.creds",
        &nkeys::KeyPair::new_account(),
    );
    let with = |dir: &Path, node: &str, file: &Path| {
        let file = file.to_path_buf();
        with_cluster(hub_config(dir, &url, node), move |c| {
            c.credentials = Some(file)
        })
    };
    let (da, db, dc) = (tmp(), tmp(), tmp());
    let a = TestHub::start(with(da.path(), "hub-a", &good)).await;
    let b = TestHub::start(with(db.path(), "hub-b", &good)).await;
    let _cam = shared_camera(&a, &b).await;

    let line = refused(with(dc.path(), "hub-c", &stranger)).await;
    assert!(line.contains(&url), "{line}");
    assert!(line.contains("wrong or missing credentials"), "{line}");
    // A file that is not a .creds file is named at start, before any connection.
    let junk = store.path().join("junk.creds");
    std::fs::write(&junk, "not a creds file").unwrap();
    let dd = tmp();
    let line = refused(with(dd.path(), "hub-d", &junk)).await;
    assert!(
        line.contains("junk.creds") && line.contains("cluster.credentials"),
        "{line}"
    );
    a.stop().await;
    b.stop().await;
}

/// A NATS server that is not up yet is not a refusal: the hub starts, serves its own
/// cameras, and joins when the server comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_not_up_yet_is_retried_in_the_background() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let store = tmp();
    let mut nats = Nats::start(&bin, store.path());
    let url = nats.url();
    nats.stop();
    let (da, db) = (tmp(), tmp());
    let a = TestHub::start(hub_config(da.path(), &url, "hub-a")).await;
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    cfg.fps = 5;
    let _cam = HubCamera::spawn(cfg);
    a.wait_camera("cam-1", |c| c["online"] == true).await;
    let mut view = ws(&a.ws_url("/ws/view/cam-1")).await;
    assert_eq!(decode(&next_binary(&mut view).await), (160, 120));
    nats.restart();
    let b = TestHub::start(hub_config(db.path(), &url, "hub-b")).await;
    for _ in 0..400 {
        let r = b.get("/api/cameras/cam-1").await;
        if r.status == 200 && r.json()["online"] == true {
            assert_eq!(r.json()["node"], "hub-a");
            drop(view);
            a.stop().await;
            b.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hub A never joined once NATS was up");
}
