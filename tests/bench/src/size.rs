//! Deployment package sizes: each function's `bootstrap` zipped the way `sam package` /
//! `sam deploy` zips a function directory (Python `zipfile`, ZIP_DEFLATED at zlib's default
//! level, mode 0755), from `sam build`'s arm64 output when present, else the host build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scenario::Function;

#[derive(Clone, Debug)]
pub struct Package {
    pub name: String,
    pub zip_bytes: u64,
    pub binary_bytes: u64,
    /// Target of the binary, read from its ELF header.
    pub arch: &'static str,
    /// Where the binary came from.
    pub source: String,
}

/// The zip step of SAM CLI's `make_zip` (samcli/lib/package/utils.py), for one file.
const ZIP: &str = r#"
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
    info = zipfile.ZipInfo("bootstrap")
    info.create_system = 3
    info.external_attr = 0o100755 << 16
    with open(src, "rb") as f:
        zf.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED)
print(os.path.getsize(dst))
"#;

/// ELF e_machine of `path`.
fn arch(path: &Path) -> Result<&'static str, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF executable", path.display()));
    }
    Ok(match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0xb7 => "arm64",
        0x3e => "x86_64",
        _ => "other",
    })
}

pub fn packages(
    python: &Path,
    bin_dir: &Path,
    sam_build: Option<&Path>,
    scratch: &Path,
) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for function in crate::scenario::FUNCTIONS {
        let from_sam = sam_build
            .map(|dir| dir.join(function.logical_id()).join("bootstrap"))
            .filter(|p| p.is_file());
        let (binary, source): (PathBuf, String) = match from_sam {
            Some(path) => (path, "sam build".into()),
            None => (
                bin_dir.join(function.name()),
                "cargo build --release".into(),
            ),
        };
        out.push(package(python, function, &binary, source, scratch)?);
    }
    Ok(out)
}

fn package(
    python: &Path,
    function: Function,
    binary: &Path,
    source: String,
    scratch: &Path,
) -> Result<Package, String> {
    let zip = scratch.join(format!("{}.zip", function.name()));
    let output = Command::new(python)
        .arg("-c")
        .arg(ZIP)
        .arg(binary)
        .arg(&zip)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "zipping {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let zip_bytes = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("zipping {} printed no size", binary.display()))?;
    let binary_bytes = std::fs::metadata(binary)
        .map_err(|e| format!("cannot stat {}: {e}", binary.display()))?
        .len();
    Ok(Package {
        name: function.name().to_string(),
        zip_bytes,
        binary_bytes,
        arch: arch(binary)?,
        source,
    })
}
