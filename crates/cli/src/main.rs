//! `espcam`: the one binary. Only argument parsing and wiring live here; every behaviour is in
//! a library crate (`espcam-hub`, `espcam-sim`, …) so it can be tested without this binary.

use clap::{Parser, Subcommand};

mod cameras;
mod firmware;
mod serve;
mod sim;
mod tokens;
mod users;

/// espcam: stream and control ESP32-S3 cameras from a browser.
#[derive(Debug, Parser)]
#[command(name = "espcam", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the protocol version, ports and paths.
    Protocol,
    /// Run the hub: dashboard at http://localhost:6971/, cameras on 6971 (control) and 6972
    /// (stream). `--demo` adds virtual cameras.
    Serve(serve::ServeArgs),
    /// Run virtual cameras: `--hub HOST[:PORT]` (hub mode, `--count N`) or `--mode ap`
    /// (standalone seed-002 camera at ws://127.0.0.1:8080/ws).
    Sim(sim::SimArgs),
    /// Dashboard users: `add NAME --role admin|viewer`, `list`, `passwd NAME`, `remove NAME`.
    User(users::UserArgs),
    /// API tokens for tools: `add NAME --role viewer|admin` (prints it once), `list`,
    /// `revoke NAME`.
    Token(tokens::TokenArgs),
    /// Camera pairing: `list`, `accept ID`, `remove ID`.
    Camera(cameras::CameraArgs),
    /// Firmware images for updates from the hub: `add FILE [--version V --board B]`, `list`.
    Firmware(firmware::FirmwareArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ESPCAM_LOG")
                // The NATS client's own log is off by default: the cluster service reports its
                // connection events once per change and a refusal as the one error line
                // (hub/src/cluster/connect.rs); ESPCAM_LOG=info,async_nats=debug shows them.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=off")),
        )
        .with_target(false)
        .init();
    let result: anyhow::Result<()> = match cli.command {
        Cmd::Protocol => {
            print_protocol();
            Ok(())
        }
        Cmd::Serve(args) => serve::run(args),
        Cmd::Sim(args) => sim::run(args),
        Cmd::User(args) => users::run(args),
        Cmd::Token(args) => tokens::run(args),
        Cmd::Camera(args) => cameras::run(args),
        Cmd::Firmware(args) => firmware::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_protocol() {
    use espcam_proto as p;
    println!("espcam protocol version {}", p::PROTOCOL_VERSION);
    println!(
        "control: ws://<hub>:{}{} (JSON)",
        p::CONTROL_PORT,
        p::CONTROL_PATH
    );
    println!(
        "stream:  ws://<hub>:{}{} (binary, {}-byte header + JPEG)",
        p::STREAM_PORT,
        p::STREAM_PATH,
        p::HEADER_LEN
    );
    println!("standalone camera: ws://<camera>{}", p::standalone::PATH);
}

/// The error and its causes on one line, each cause once: library errors often already put
/// their cause's message in their own (`could not open X: <cause>`), and printing the chain
/// verbatim would repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("could not open the data directory: {0}")]
    struct Outer(#[from] std::io::Error);

    #[test]
    fn report_names_each_cause_once() {
        let inner = std::io::Error::other("in use by another espcam process");
        let e = anyhow::Error::from(Outer(inner)).context("starting the hub");
        assert_eq!(
            report(&e),
            "starting the hub: could not open the data directory: in use by another espcam process"
        );
    }
}
