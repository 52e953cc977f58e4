//! The workspace as `cargo metadata --no-deps` describes it: member packages, their
//! dependencies on other members (normal, dev, build) and their lib/bin targets.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

/// The kind of a dependency, as in the `[dependencies]` table it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DepKind {
    /// `[dependencies]`
    Normal,
    /// `[dev-dependencies]`
    Dev,
    /// `[build-dependencies]`
    Build,
}

impl DepKind {
    /// The name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            DepKind::Normal => "normal",
            DepKind::Dev => "dev",
            DepKind::Build => "build",
        }
    }
}

/// One dependency of a member on another member.
#[derive(Debug, Clone)]
pub struct MemberDep {
    /// Package name of the depended-on member.
    pub name: String,
    /// Which table it is declared in.
    pub kind: DepKind,
}

/// A crate root of a package (its library or one of its binaries).
#[derive(Debug, Clone)]
pub struct Target {
    /// Target name (the bin's name, or the lib's crate name).
    pub name: String,
    /// `true` for the library (lib or proc-macro), `false` for a binary.
    pub is_lib: bool,
    /// The crate root file.
    pub src_path: PathBuf,
}

/// One workspace member.
#[derive(Debug, Clone)]
pub struct Package {
    /// Package name (`e2e-tests`, not the directory `tests`).
    pub name: String,
    /// Directory holding its Cargo.toml.
    pub dir: PathBuf,
    /// Its dependencies on other workspace members, in declaration order.
    pub deps: Vec<MemberDep>,
    /// Its lib and bin targets (tests, benches, examples and build scripts are left out).
    pub targets: Vec<Target>,
}

/// The workspace: root directory and members.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root directory.
    pub root: PathBuf,
    /// The members, sorted by name.
    pub packages: Vec<Package>,
}

#[derive(Deserialize)]
struct RawMetadata {
    packages: Vec<RawPackage>,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    manifest_path: PathBuf,
    dependencies: Vec<RawDep>,
    targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
struct RawDep {
    name: String,
    kind: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawTarget {
    name: String,
    kind: Vec<String>,
    src_path: PathBuf,
}

impl Workspace {
    /// Runs `cargo metadata --format-version 1 --no-deps` for the workspace at `root` (the
    /// cargo of the current build if run under cargo, else `cargo` from PATH).
    pub fn load(root: &Path) -> Result<Workspace> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = root.join("Cargo.toml");
        let output = Command::new(&cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .with_context(|| format!("running {} metadata", cargo.to_string_lossy()))?;
        if !output.status.success() {
            bail!(
                "cargo metadata --manifest-path {} failed: {}",
                manifest.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Workspace::from_json(&output.stdout)
    }

    /// Parses the JSON of `cargo metadata --format-version 1 --no-deps`.
    pub fn from_json(json: &[u8]) -> Result<Workspace> {
        let raw: RawMetadata =
            serde_json::from_slice(json).context("parsing the output of cargo metadata")?;
        let member_names: Vec<String> = raw.packages.iter().map(|p| p.name.clone()).collect();
        let mut packages: Vec<Package> = raw
            .packages
            .into_iter()
            .map(|p| {
                let deps = p
                    .dependencies
                    .into_iter()
                    // Path dependencies on members only: a registry crate may share a name.
                    .filter(|d| d.path.is_some() && member_names.contains(&d.name))
                    .map(|d| MemberDep {
                        name: d.name,
                        kind: match d.kind.as_deref() {
                            Some("dev") => DepKind::Dev,
                            Some("build") => DepKind::Build,
                            _ => DepKind::Normal,
                        },
                    })
                    .collect();
                let targets = p
                    .targets
                    .into_iter()
                    .filter_map(|t| {
                        let is_lib = t
                            .kind
                            .iter()
                            .any(|k| matches!(k.as_str(), "lib" | "rlib" | "proc-macro"));
                        let is_bin = t.kind.iter().any(|k| k == "bin");
                        (is_lib || is_bin).then_some(Target {
                            name: t.name,
                            is_lib,
                            src_path: t.src_path,
                        })
                    })
                    .collect();
                let dir = p
                    .manifest_path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                Package {
                    name: p.name,
                    dir,
                    deps,
                    targets,
                }
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Workspace {
            root: raw.workspace_root,
            packages,
        })
    }

    /// The member named `name`, if any.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// `path` relative to the workspace root, for reports.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_member_path_deps_and_lib_bin_targets() {
        let json = br#"{
            "workspace_root": "/ws",
            "packages": [
                {"name": "b", "manifest_path": "/ws/b/Cargo.toml",
                 "dependencies": [
                    {"name": "a", "kind": null, "path": "/ws/a"},
                    {"name": "a", "kind": "dev", "path": "/ws/a"},
                    {"name": "serde", "kind": null},
                    {"name": "a2", "kind": "build", "path": "/elsewhere"}
                 ],
                 "targets": [
                    {"name": "b", "kind": ["lib"], "src_path": "/ws/b/src/lib.rs"},
                    {"name": "tool", "kind": ["bin"], "src_path": "/ws/b/src/bin/tool.rs"},
                    {"name": "it", "kind": ["test"], "src_path": "/ws/b/tests/it.rs"}
                 ]},
                {"name": "a", "manifest_path": "/ws/a/Cargo.toml", "dependencies": [],
                 "targets": []}
            ]
        }"#;
        let ws = Workspace::from_json(json).unwrap();
        assert_eq!(ws.packages[0].name, "a");
        let b = ws.package("b").unwrap();
        let deps: Vec<(&str, DepKind)> = b.deps.iter().map(|d| (d.name.as_str(), d.kind)).collect();
        assert_eq!(deps, vec![("a", DepKind::Normal), ("a", DepKind::Dev)]);
        assert_eq!(b.targets.len(), 2);
        assert!(b.targets[0].is_lib && !b.targets[1].is_lib);
        assert_eq!(b.dir, PathBuf::from("/ws/b"));
    }
}
