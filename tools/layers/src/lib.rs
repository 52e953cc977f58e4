//! Architecture check of the workspace: crate layering rules (from `cargo metadata`) and
//! module import cycles inside every crate. `cargo run -p layers` prints the report;
//! `cargo test -p layers` fails on violations not in [`KNOWN_VIOLATIONS`] and on entries of
//! that list which no longer occur.

pub mod graph;
pub mod known;
pub mod metadata;
pub mod modules;
pub mod report;
pub mod rules;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use known::KNOWN_VIOLATIONS;
pub use metadata::Workspace;
pub use report::{Finding, Report, Verdict};

/// The workspace this crate belongs to (`tools/layers/../..`).
pub fn default_workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs every check on the workspace at `root` and returns the findings, sorted.
pub fn analyze(root: &Path) -> Result<Report> {
    let workspace = Workspace::load(root)?;
    let mut report = Report::default();
    rules::check_crates(&workspace, rules::RULES, &mut report);
    modules::check_modules(&workspace, &mut report)?;
    report.normalize();
    Ok(report)
}
