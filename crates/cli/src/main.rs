//! `espcam`: the one binary. Only argument parsing and wiring live here; every behaviour is in
//! a library crate (`espcam-hub`, `espcam-sim`, …) so it can be tested without this binary.

use clap::{Parser, Subcommand};

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ESPCAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let result: anyhow::Result<()> = match cli.command {
        Cmd::Protocol => {
            print_protocol();
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
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
