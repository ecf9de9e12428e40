//! `cargo run --release` stops on SIGTERM (what `kill`, systemd and container runtimes send) as it
//! does on SIGINT (Ctrl-C): the launcher is started as its own process on free ports and a throwaway
//! data folder, signalled, and must exit by itself, successfully, with its ports closed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts the launcher and waits for it to report it is running; returns it with the gateway's URL.
fn start_stack(data_dir: &std::path::Path) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_immilink-stack"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("IMMILINK_")) {
        command.env_remove(key);
    }
    for service in ["GATEWAY", "IDENTITY", "BROKER", "AUDIT", "VENDORS", "NIA_MOCK"] {
        command.env(format!("IMMILINK_{service}_ADDR"), "127.0.0.1:0");
    }
    let mut child = command
        .env("IMMILINK_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the launcher starts");
    let stdout = child.stdout.take().expect("the launcher's output");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut gateway = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match received.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the launcher did not report it was running within 120 s");
            }
        };
        if let Some(rest) = line.trim().strip_prefix("gateway") {
            gateway = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.contains("stops it") {
            break;
        }
    }
    (child, gateway.expect("the launcher prints the gateway's URL"))
}

fn answers(url: &str) -> bool {
    let address = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(&address.parse().expect("a socket address"), Duration::from_secs(1)).is_ok()
}

/// Sends `signal` and waits (bounded) for the process to exit by itself.
fn stop_with(mut child: Child, signal: &str, gateway: &str) {
    assert!(answers(gateway), "the gateway is listening before the signal");
    let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} was sent");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("the launcher's status") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the launcher was still running 30 s after SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "the launcher exits cleanly after SIG{signal}: {exit:?}");
    assert!(!answers(gateway), "the gateway's port is closed after SIG{signal}");
}

#[test]
fn the_launcher_stops_on_sigterm() {
    let data = tempfile::tempdir().expect("a data folder");
    let (child, gateway) = start_stack(data.path());
    stop_with(child, "TERM", &gateway);
}

#[test]
fn the_launcher_stops_on_sigint() {
    let data = tempfile::tempdir().expect("a data folder");
    let (child, gateway) = start_stack(data.path());
    stop_with(child, "INT", &gateway);
}
