//! Child processes that never outlive their owner.
//!
//! A [`Supervised`] process runs in a process group of its own (so a terminal's Ctrl-C reaches
//! us, not it, and we stop it in order). It is stopped
//! - by [`Supervised::stop`] or on drop: SIGTERM to its group, SIGKILL after a grace period,
//!   then SIGKILL to any descendant that left the group (`cargo lambda watch` starts each
//!   function in a session of its own) and is still the same process;
//! - when the owner dies without dropping it (killed, aborted): a small `sh` watchdog, in its
//!   own group, reads a pipe held by the owner; at EOF it sends SIGTERM, then SIGKILL, to the
//!   group. `cargo lambda watch` stops its function processes on SIGTERM.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// Waits for EOF on stdin (the owner's end of the pipe closes when it exits), then stops the
/// process group `$1`.
const WATCHDOG: &str = r#"cat >/dev/null
kill -s TERM -- "-$1" 2>/dev/null || exit 0
i=0
while kill -s 0 -- "-$1" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -s KILL -- "-$1" 2>/dev/null
exit 0"#;

/// How long a stopped process gets to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// A running child process (and its descendants), stopped on drop.
pub struct Supervised {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    stopped: bool,
}

impl Supervised {
    /// Spawns `command` with stdout and stderr appended to `log`, stdin from /dev/null.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Supervised, String> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        let pid = child.id();
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let mut supervised = Supervised {
            name: name.to_string(),
            child,
            watchdog: None,
            stopped: false,
        };
        match watchdog {
            Ok(watchdog) => supervised.watchdog = Some(watchdog),
            Err(e) => {
                supervised.stop();
                return Err(format!("cannot start the watchdog of {name} (sh): {e}"));
            }
        }
        Ok(supervised)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process, its group and its descendants; idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id() as i32;
        let descendants = descendants(pid);
        if self.exited().is_none() {
            signal_group(pid, "TERM");
            let started = Instant::now();
            while self.exited().is_none() && started.elapsed() < GRACE {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.exited().is_none() {
                signal_group(pid, "KILL");
                let _ = self.child.wait();
            }
        }
        // Whatever of the group is left (a grandchild that ignored SIGTERM).
        signal_group(pid, "KILL");
        for process in descendants {
            process.kill_if_same();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -s <signal> -- <target>` (POSIX `kill`: no unsafe code, no extra dependency).
fn signal(target: &str, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--"])
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn signal_group(pgid: i32, name: &str) {
    if pgid > 1 {
        signal(&format!("-{pgid}"), name);
    }
}

/// A process seen under /proc, identified by pid and start time (so a reused pid is never hit).
struct Seen {
    pid: i32,
    start: Option<u64>,
}

impl Seen {
    fn kill_if_same(&self) {
        if self.pid > 1 && running(self.pid, self.start) {
            signal(&self.pid.to_string(), "KILL");
        }
    }
}

/// `(ppid, start time, state)` from `/proc/<pid>/stat` (Linux; `None` elsewhere).
fn stat(pid: i32) -> Option<(i32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start, state))
}

/// Whether `pid` is still the process that started at `start`, and not a zombie.
fn running(pid: i32, start: Option<u64>) -> bool {
    matches!(stat(pid), Some((_, s, state)) if Some(s) == start && state != 'Z' && state != 'X')
}

/// Every live descendant of `root` (empty where /proc is not available).
fn descendants(root: i32) -> Vec<Seen> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let table: Vec<(i32, i32, u64)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).map(|(ppid, start, _)| (pid, ppid, start)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &table {
            if ppid == parent && !found.iter().any(|s: &Seen| s.pid == pid) {
                found.push(Seen {
                    pid,
                    start: Some(start),
                });
                frontier.push(pid);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_the_process_and_its_children() {
        let log = std::env::temp_dir().join(format!("supervised-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.arg("-c").arg("sleep 300 & sleep 300");
        let mut process = Supervised::spawn("sleeper", command, &log).expect("spawn sh");
        std::thread::sleep(Duration::from_millis(200));
        let children = descendants(process.pid() as i32);
        assert!(!children.is_empty(), "sh started its sleeps");
        process.stop();
        assert!(process.exited().is_some());
        for child in children {
            let started = Instant::now();
            while running(child.pid, child.start) && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !running(child.pid, child.start),
                "child {} still runs",
                child.pid
            );
        }
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn the_watchdog_stops_the_group_when_its_owner_goes_away() {
        let log = std::env::temp_dir().join(format!("watchdog-{}.log", std::process::id()));
        let mut command = Command::new("sleep");
        command.arg("300");
        let mut process = Supervised::spawn("sleep", command, &log).expect("spawn sleep");
        let mut watchdog = process.watchdog.take().expect("a watchdog");
        // What the owner's death does: its end of the watchdog's pipe closes.
        drop(watchdog.stdin.take());
        let started = Instant::now();
        while process.exited().is_none() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            process.exited().is_some(),
            "the watchdog stopped the process"
        );
        let _ = watchdog.wait();
        let _ = std::fs::remove_file(log);
    }
}
