//! `identity-emulator --listen 127.0.0.1:0 [--config FILE]`
//!
//! Prints `listening on http://127.0.0.1:PORT` as its first stdout line, then serves until
//! SIGTERM or SIGINT, and exits 0.

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: identity-emulator [--listen ADDR] [--config FILE]\n\
  --listen ADDR   address to listen on (default 127.0.0.1:0, a free port)\n\
  --config FILE   JSON organization config (default: the built-in organization)";

fn parse_args() -> Result<(String, Option<String>), String> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut config = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--config" => config = Some(args.next().ok_or("--config needs a file")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((listen, config))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let (listen, config_path) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("identity-emulator: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match config_path {
        None => identity_emulator::Config::default(),
        Some(path) => match identity_emulator::Config::from_file(std::path::Path::new(&path)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("identity-emulator: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // install the handlers before announcing the URL: a SIGTERM right after the first line
    // must already find them
    let signals = Signals::install();
    let emulator = match identity_emulator::start(config, &listen).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("identity-emulator: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", emulator.url());
        let _ = out.flush();
    }
    signals.wait().await;
    emulator.shutdown();
    emulator.stopped().await;
    ExitCode::SUCCESS
}

struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Until SIGTERM or SIGINT.
    async fn wait(self) {
        match (self.term, self.int) {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Some(mut term), None) => {
                term.recv().await;
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
