//! The `identity-emulator` binary: first stdout line, config file, clean SIGTERM exit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_identity-emulator");

fn spawn(args: &[&str]) -> (Child, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    (child, line.trim_end().to_string(), started.elapsed())
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "emulator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn prints_its_url_first_starts_fast_and_stops_cleanly_on_sigterm() {
    let (mut child, line, elapsed) = spawn(&["--listen", "127.0.0.1:0"]);
    let re = regex::Regex::new(r"^listening on http://127\.0\.0\.1:\d+$").unwrap();
    assert!(re.is_match(&line), "{line:?}");
    assert!(elapsed < Duration::from_secs(1), "started in {elapsed:?}");
    let url = line.trim_start_matches("listening on ").to_string();
    let state = get(&url, "/_emulator/state");
    assert!(state.starts_with("HTTP/1.1 200"), "{state}");
    assert!(state.contains("111111111111"));
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn reads_its_organization_from_a_config_file() {
    let dir = std::env::temp_dir().join(format!("identity-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        r#"{"region": "eu-west-1", "management_account_id": "999999999999",
            "accounts": [{"account_id": "222222222222", "portals": [
              {"portal_arn": "arn:aws:workspaces-web:eu-west-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"}]}]}"#,
    )
    .unwrap();
    let (mut child, line, _) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let url = line.trim_start_matches("listening on ").to_string();
    let state = get(&url, "/_emulator/state");
    assert!(
        state.contains("999999999999") && state.contains("eu-west-1"),
        "{state}"
    );
    assert!(state.contains("portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"));
    assert_eq!(terminate(&mut child).code(), Some(0));

    std::fs::write(&path, r#"{"management_account_id": "42"}"#).unwrap();
    let out = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("management_account_id"));
    let _ = std::fs::remove_dir_all(&dir);
}
