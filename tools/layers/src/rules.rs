//! Crate layering: the rules table, and the check of every dependency between workspace
//! members (normal, dev and build) against it, plus cycles between members.

use std::collections::{BTreeMap, BTreeSet};

use crate::graph::Graph;
use crate::metadata::{DepKind, Workspace};
use crate::report::{Finding, Report};

/// One layering rule. A rule whose subject crate does not exist (yet) is skipped.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Only the `allowed` crates may depend on `krate`.
    OnlyUsedBy {
        /// The depended-on crate.
        krate: &'static str,
        /// The crates that may depend on it.
        allowed: &'static [&'static str],
        /// Why, for the report.
        why: &'static str,
    },
    /// `krate` may depend on the `allowed` workspace crates only (none if empty).
    OnlyUses {
        /// The depending crate.
        krate: &'static str,
        /// The workspace crates it may depend on.
        allowed: &'static [&'static str],
        /// Why, for the report.
        why: &'static str,
    },
    /// `krate` must not depend on `on`.
    MustNotUse {
        /// The depending crate.
        krate: &'static str,
        /// The crate it must not depend on.
        on: &'static str,
        /// Why, for the report.
        why: &'static str,
    },
}

/// Binaries and test harnesses at the top, the only crates that may wire services together:
/// the operator CLI (directory `cli`, package `commerce-cli`) and the end-to-end tests
/// (directory `tests`). Rules name packages, as `cargo metadata` does.
const TOP: &[&str] = &["commerce-cli", "e2e-tests"];

/// The layering of the workspace. Applies to normal, dev and build dependencies alike.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    Rule::OnlyUses   { krate: "proto",            allowed: &[],
                       why: "generated gRPC code sits at the bottom" },
    Rule::OnlyUses   { krate: "domain",           allowed: &[],
                       why: "the pure domain model sits at the bottom" },
    Rule::OnlyUses   { krate: "platform",         allowed: &["proto", "domain"],
                       why: "shared telemetry/admin/shutdown/kafka/auth plumbing; the domain only for its value types" },
    Rule::OnlyUses   { krate: "event-store",      allowed: &["domain", "event-schemas"],
                       why: "the store keeps envelopes of domain events and knows no service" },
    Rule::OnlyUses   { krate: "read-model",       allowed: &["platform", "proto", "domain", "event-schemas"],
                       why: "the read model is shared by projectors and query services" },
    Rule::OnlyUsedBy { krate: "command-services", allowed: TOP,
                       why: "the write side is a service, not a library for the other services" },
    Rule::OnlyUsedBy { krate: "projectors",       allowed: TOP,
                       why: "a service, not a library" },
    Rule::OnlyUsedBy { krate: "query-services",   allowed: TOP,
                       why: "a service, not a library" },
    Rule::OnlyUsedBy { krate: "bff",              allowed: TOP,
                       why: "a service, not a library" },
    Rule::MustNotUse { krate: "query-services",   on: "projectors",
                       why: "queries read the read model, not the projector service" },
];

/// Checks every dependency between members against [`RULES`] and looks for cycles between
/// members (dev-dependencies included, which cargo itself allows to form cycles).
pub fn check_crates(workspace: &Workspace, rules: &[Rule], report: &mut Report) {
    // (from, to) -> kinds
    let mut edges: BTreeMap<(&str, &str), BTreeSet<DepKind>> = BTreeMap::new();
    for package in &workspace.packages {
        for dep in &package.deps {
            edges
                .entry((package.name.as_str(), dep.name.as_str()))
                .or_default()
                .insert(dep.kind);
        }
    }
    let kinds = |kinds: &BTreeSet<DepKind>| {
        kinds
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let manifest = |name: &str| {
        workspace
            .package(name)
            .map(|p| workspace.relative(&p.dir.join("Cargo.toml")))
            .unwrap_or_default()
    };

    let mut missing: BTreeSet<&str> = BTreeSet::new();
    for rule in rules {
        let (subject, others): (&str, &[&str]) = match rule {
            Rule::OnlyUsedBy { krate, allowed, .. } | Rule::OnlyUses { krate, allowed, .. } => {
                (krate, allowed)
            }
            Rule::MustNotUse { krate, on, .. } => (krate, std::slice::from_ref(on)),
        };
        missing.extend(
            std::iter::once(&subject)
                .chain(others)
                .filter(|name| workspace.package(name).is_none()),
        );
        if workspace.package(subject).is_none() {
            continue;
        }
        for (&(from, to), dep_kinds) in &edges {
            let broken = match rule {
                Rule::OnlyUsedBy { krate, allowed, .. } => to == *krate && !allowed.contains(&from),
                Rule::OnlyUses { krate, allowed, .. } => from == *krate && !allowed.contains(&to),
                Rule::MustNotUse { krate, on, .. } => from == *krate && to == *on,
            };
            if !broken {
                continue;
            }
            let (text, why) = match rule {
                Rule::OnlyUsedBy {
                    krate,
                    allowed,
                    why,
                } => (
                    format!("only {} may depend on {krate}", allowed.join(", ")),
                    why,
                ),
                Rule::OnlyUses {
                    krate,
                    allowed: [],
                    why,
                } => (format!("{krate} depends on no workspace crate"), why),
                Rule::OnlyUses {
                    krate,
                    allowed,
                    why,
                } => (
                    format!("{krate} may depend only on {}", allowed.join(", ")),
                    why,
                ),
                Rule::MustNotUse { krate, on, why } => {
                    (format!("{krate} must not depend on {on}"), why)
                }
            };
            report.findings.push(Finding {
                key: format!("{from} -> {to}"),
                detail: format!(
                    "{} dependency in {}; rule: {text} ({why})",
                    kinds(dep_kinds),
                    manifest(from)
                ),
            });
        }
    }

    if !missing.is_empty() {
        report.notes.push(format!(
            "crates named in the rules that do not exist (yet): {}; rules on them are skipped",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    let mut graph = Graph::default();
    for package in &workspace.packages {
        graph.add_node(&package.name);
    }
    for &(from, to) in edges.keys() {
        graph.add_edge(from, to);
    }
    for component in graph.cycles() {
        let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
        let mut detail = String::from("dependencies between the members of the cycle:");
        for (&(from, to), dep_kinds) in &edges {
            if members.contains(from) && members.contains(to) {
                detail.push_str(&format!(
                    "\n  {from} -> {to} ({}, {})",
                    kinds(dep_kinds),
                    manifest(from)
                ));
            }
        }
        report.findings.push(Finding {
            key: format!("crate cycle: {}", component.join(", ")),
            detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{MemberDep, Package};
    use std::path::PathBuf;

    fn workspace(deps: &[(&str, &[(&str, DepKind)])]) -> Workspace {
        Workspace {
            root: PathBuf::from("/ws"),
            packages: deps
                .iter()
                .map(|(name, deps)| Package {
                    name: (*name).to_owned(),
                    dir: PathBuf::from(format!("/ws/{name}")),
                    deps: deps
                        .iter()
                        .map(|(n, kind)| MemberDep {
                            name: (*n).to_owned(),
                            kind: *kind,
                        })
                        .collect(),
                    targets: Vec::new(),
                })
                .collect(),
        }
    }

    fn keys(report: &Report) -> Vec<&str> {
        report.findings.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn flags_each_rule_and_skips_missing_crates() {
        let ws = workspace(&[
            ("domain", &[]),
            ("command-services", &[("domain", DepKind::Normal)]),
            ("bff", &[("command-services", DepKind::Dev)]),
            ("commerce-cli", &[("command-services", DepKind::Normal)]),
            ("query-services", &[("projectors", DepKind::Build)]),
            ("projectors", &[]),
        ]);
        let mut report = Report::default();
        check_crates(&ws, RULES, &mut report);
        report.normalize();
        assert_eq!(
            keys(&report),
            vec!["bff -> command-services", "query-services -> projectors"]
        );
        assert!(report.findings[0]
            .detail
            .contains("dev dependency in bff/Cargo.toml"));
        // query-services -> projectors breaks two rules: one finding, both reasons.
        assert_eq!(report.findings[1].detail.lines().count(), 2);
        assert!(report
            .notes
            .iter()
            .any(|n| n.contains("platform") && n.contains("read-model")));
    }

    #[test]
    fn dev_dependency_cycles_are_found() {
        let ws = workspace(&[
            ("a", &[("b", DepKind::Normal)]),
            ("b", &[("a", DepKind::Dev)]),
        ]);
        let mut report = Report::default();
        check_crates(&ws, &[], &mut report);
        assert_eq!(keys(&report), vec!["crate cycle: a, b"]);
        assert!(report.findings[0]
            .detail
            .contains("b -> a (dev, b/Cargo.toml)"));
    }
}
