//! A headless Chromium driven over WebDriver (chromedriver + fantoccini) for the dashboard's
//! end-to-end tests.
//!
//! `Browser::launch` finds `chromium` and `chromedriver`, starts chromedriver on a free loopback
//! port (it announces readiness on stdout, which we wait for instead of sleeping), and opens one
//! session with a fresh profile. Dropping a `Browser` ends the session and kills chromedriver,
//! so a failing test leaves no browser behind. When the tools are missing the tests skip,
//! unless `ESPCAM_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure.
//!
//! This helper never talks to anything but loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Flags that make Debian's Chromium run headless in a container and stay off the network.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
];

/// How long any one condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_port: u16,
    session: String,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn which(names: &[&str], env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Where screenshots go: `<target>/browser-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-screenshots")
}

fn free_port() -> u16 {
    // chromedriver has no "port 0"; take one the OS gives out and release it at once.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Chromedriver's `se/log` endpoint: the browser console since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Chromedriver's `goog/cdp/execute` endpoint: one Chrome DevTools Protocol command.
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.0.to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or returns `None` (test skipped) when they
    /// are not installed and `ESPCAM_REQUIRE_BROWSER` is not `1`.
    pub async fn launch(test: &str) -> Option<Browser> {
        let chromium = which(
            &["chromium", "chromium-browser", "google-chrome"],
            "ESPCAM_CHROMIUM",
        );
        let chromedriver = which(&["chromedriver"], "ESPCAM_CHROMEDRIVER");
        let (chromium, chromedriver) = match (chromium, chromedriver) {
            (Some(c), Some(d)) => (c, d),
            (c, d) => {
                let missing = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                    .iter()
                    .filter(|(_, m)| *m)
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" and ");
                let why = format!(
                    "{missing} not found (Debian: apt-get install chromium chromium-driver)"
                );
                if std::env::var("ESPCAM_REQUIRE_BROWSER").as_deref() == Ok("1") {
                    panic!("ESPCAM_REQUIRE_BROWSER=1 but {why}");
                }
                eprintln!("SKIPPED {test}: {why}");
                return None;
            }
        };

        let driver_port = free_port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        // chromedriver prints "... started successfully on port N" once it listens.
        let stdout = driver.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(WAIT).is_err() {
            let _ = driver.kill();
            panic!("chromedriver did not report ready within {WAIT:?}");
        }

        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1440,1000".to_owned());
        let caps: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }))
        .unwrap();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}/"))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                panic!("cannot open a Chromium session: {e}");
            }
        };
        let session = client.session_id().await.unwrap().unwrap_or_default();
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            client,
            driver,
            driver_port,
            session,
            _profile: profile,
            shots,
        })
    }

    /// Clicks the element `loc` finds (fails the test if there is none).
    pub async fn click(&self, loc: Locator<'_>) {
        self.client
            .find(loc)
            .await
            .unwrap_or_else(|e| panic!("no element to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click failed: {e}"));
    }

    /// Runs `body` (a function body, `return ...;`) in the page.
    pub async fn js(&self, body: &str) -> Value {
        self.client
            .execute(body, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{body}"))
    }

    /// Polls the JS expression `expr` until it is truthy and returns its value; fails the test
    /// with `what` after [`WAIT`].
    pub async fn wait_for(&self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        let body = format!("try {{ return ({expr}); }} catch (e) {{ return null; }}");
        loop {
            let v = self.js(&body).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("FAILED-{}", slug(what))).await;
                panic!(
                    "timed out after {WAIT:?} waiting for: {what}\n  ({expr})\n  screenshot: {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport as `<target>/browser-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Emulates a `width`×`height` viewport (`mobile`: a phone, honouring the viewport meta
    /// tag); `None` goes back to the real window. Unlike resizing the window, this is not
    /// limited by the headless screen size.
    pub async fn emulate_viewport(&self, size: Option<(u32, u32, bool)>) {
        let cmd = match size {
            Some((width, height, mobile)) => json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": { "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile },
            }),
            None => json!({ "cmd": "Emulation.clearDeviceMetricsOverride", "params": {} }),
        };
        self.client.issue_cmd(Cdp(cmd)).await.unwrap();
    }

    /// Runs `source` in every page loaded from now on, before the page's own scripts (CDP
    /// `Page.addScriptToEvaluateOnNewDocument`); returns the id for
    /// [`Browser::stop_running_before_pages`].
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub async fn run_before_pages(&self, source: &str) -> String {
        let v = self
            .client
            .issue_cmd(Cdp(json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": source },
            })))
            .await
            .unwrap();
        v["identifier"].as_str().unwrap().to_owned()
    }

    /// Stops running the script [`Browser::run_before_pages`] added as `id`.
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub async fn stop_running_before_pages(&self, id: &str) {
        self.client
            .issue_cmd(Cdp(json!({
                "cmd": "Page.removeScriptToEvaluateOnNewDocument",
                "params": { "identifier": id },
            })))
            .await
            .unwrap();
    }

    /// Console messages of level SEVERE since the last call (JS errors, failed loads).
    pub async fn console_errors(&self) -> Vec<String> {
        let v = self.client.issue_cmd(BrowserLog).await.unwrap();
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session over plain HTTP (we cannot await here) so chromedriver closes
        // Chromium, then stop chromedriver itself.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.driver_port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
