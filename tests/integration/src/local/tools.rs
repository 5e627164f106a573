//! The external tools a local run needs, found up front so a missing one is one clear message
//! (what is missing, and the command that installs it) instead of a failure halfway through.

use std::path::{Path, PathBuf};

/// Paths of the tools a local run uses.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `cargo` (`$CARGO` when run by cargo, else the first on `PATH`).
    pub cargo: PathBuf,
    /// `cargo-lambda` (`$CARGO_LAMBDA`, else the project's `.venv-sam/bin/cargo-lambda`).
    pub cargo_lambda: PathBuf,
    /// moto's `moto_server` (`$MOTO_SERVER`, else `.venv/bin/moto_server`).
    pub moto_server: PathBuf,
    /// Directory put first on the `PATH` of `cargo lambda` (the SAM venv's `bin`: zig lives there).
    pub venv_bin: Option<PathBuf>,
}

const INSTALL_SAM: &str = "tests/tools/venv.sh .venv-sam tests/tools/requirements-sam.txt";
const INSTALL_MOTO: &str = "make venv";

impl Tools {
    /// Finds every tool, or explains what is missing and how to install it.
    pub fn find(root: &Path) -> Result<Tools, String> {
        let mut missing = Vec::new();

        let cargo = match std::env::var_os("CARGO") {
            Some(cargo) => Some(PathBuf::from(cargo)),
            None => on_path("cargo"),
        };
        if cargo.is_none() {
            missing
                .push("cargo (the Rust toolchain): install it from https://rustup.rs".to_string());
        }

        let cargo_lambda = match std::env::var_os("CARGO_LAMBDA") {
            Some(path) => PathBuf::from(path),
            None => root.join(".venv-sam/bin/cargo-lambda"),
        };
        if !cargo_lambda.is_file() {
            missing.push(format!(
                "cargo-lambda (not at {}): run `make demo` (it installs it) or `{INSTALL_SAM}`, \
                 or set CARGO_LAMBDA to a cargo-lambda binary",
                cargo_lambda.display()
            ));
        }

        // moto.rs looks in the checkout it was compiled in unless MOTO_SERVER says otherwise:
        // point it at this checkout's venv.
        if std::env::var_os("MOTO_SERVER").is_none() {
            let ours = root.join(".venv/bin/moto_server");
            if ours.is_file() {
                std::env::set_var("MOTO_SERVER", ours);
            }
        }
        let moto_server = crate::moto::moto_server_path();
        if !moto_server.is_file() {
            missing.push(format!(
                "moto server (not at {}): run `{INSTALL_MOTO}` (or `make demo`), or set MOTO_SERVER",
                moto_server.display()
            ));
        }

        if !missing.is_empty() {
            return Err(format!("missing tools:\n  - {}", missing.join("\n  - ")));
        }
        let venv_bin = cargo_lambda
            .parent()
            .filter(|dir| dir.join("python").exists())
            .map(Path::to_path_buf);
        Ok(Tools {
            cargo: cargo.unwrap_or_else(|| PathBuf::from("cargo")),
            cargo_lambda,
            moto_server,
            venv_bin,
        })
    }

    /// `PATH` for child processes: the venv's `bin` first (zig for cross builds), then ours.
    pub fn path_env(&self) -> std::ffi::OsString {
        let current = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = self.venv_bin.iter().cloned().collect();
        // The cargo running us: `cargo lambda watch` runs `cargo run` from PATH.
        if let Some(dir) = self.cargo.parent().filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(dir.to_path_buf());
        }
        dirs.extend(std::env::split_paths(&current));
        std::env::join_paths(dirs).unwrap_or(current)
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
