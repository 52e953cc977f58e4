//! `cargo run -p layers [-- [--check] [WORKSPACE_ROOT]]`: prints the layering and module-cycle
//! report. Exits 0 whatever it finds, unless `--check` is given: then it exits 1 on new
//! violations or stale KNOWN_VIOLATIONS entries, like the test.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

fn main() -> Result<ExitCode> {
    let mut check = false;
    let mut root = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: layers [--check] [WORKSPACE_ROOT]");
                return Ok(ExitCode::SUCCESS);
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag}"),
            path => root = Some(PathBuf::from(path)),
        }
    }
    let root = root.unwrap_or_else(layers::default_workspace_root);
    let report = layers::analyze(&root)?;
    print!("{}", report.render(layers::KNOWN_VIOLATIONS));
    if check && !report.verdict(layers::KNOWN_VIOLATIONS).is_clean() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
