//! Findings, their rendering, and the comparison with the allowlist of known violations.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One violation: a stable `key` (what the allowlist holds) and the details a developer
/// needs to fix it (files, lines, rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Stable identifier, e.g. `bff -> command-services` or
    /// `cycle command-services: cart_service, generic_service`.
    pub key: String,
    /// Multi-line explanation, without the key.
    pub detail: String,
}

/// Everything the check found, plus notes that are not violations (skipped rules).
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Violations, sorted by key.
    pub findings: Vec<Finding>,
    /// Informational lines, e.g. rules skipped because their crate does not exist yet.
    pub notes: Vec<String>,
}

/// The report held against the allowlist.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Findings whose key is not allowlisted.
    pub new: Vec<Finding>,
    /// Allowlisted findings that are still present.
    pub known: Vec<Finding>,
    /// Allowlisted keys that no longer occur.
    pub stale: Vec<String>,
}

impl Verdict {
    /// No new violation and no stale allowlist entry.
    pub fn is_clean(&self) -> bool {
        self.new.is_empty() && self.stale.is_empty()
    }
}

impl Report {
    /// Sorts and de-duplicates the findings (same key: details joined).
    pub fn normalize(&mut self) {
        self.findings.sort();
        let mut merged: Vec<Finding> = Vec::new();
        for finding in self.findings.drain(..) {
            match merged.last_mut() {
                Some(last) if last.key == finding.key => {
                    if !last.detail.contains(&finding.detail) {
                        last.detail.push('\n');
                        last.detail.push_str(&finding.detail);
                    }
                }
                _ => merged.push(finding),
            }
        }
        self.findings = merged;
    }

    /// Splits the findings into new and known ones, and lists allowlist entries that no
    /// longer occur.
    pub fn verdict(&self, known: &[&str]) -> Verdict {
        let allowed: BTreeSet<&str> = known.iter().copied().collect();
        let present: BTreeSet<&str> = self.findings.iter().map(|f| f.key.as_str()).collect();
        let (known_findings, new): (Vec<Finding>, Vec<Finding>) = self
            .findings
            .iter()
            .cloned()
            .partition(|f| allowed.contains(f.key.as_str()));
        let stale = allowed
            .difference(&present)
            .map(|k| (*k).to_owned())
            .collect();
        Verdict {
            new,
            known: known_findings,
            stale,
        }
    }

    /// The whole report as text: every finding with its details, marked NEW or known,
    /// then the stale allowlist entries and the notes.
    pub fn render(&self, known: &[&str]) -> String {
        let verdict = self.verdict(known);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "layers: {} violation(s), {} new, {} known (KNOWN_VIOLATIONS), {} stale allowlist entr{}",
            self.findings.len(),
            verdict.new.len(),
            verdict.known.len(),
            verdict.stale.len(),
            if verdict.stale.len() == 1 { "y" } else { "ies" },
        );
        for (label, findings) in [("NEW", &verdict.new), ("known", &verdict.known)] {
            for finding in findings {
                let _ = writeln!(out, "\n[{label}] {}", finding.key);
                for line in finding.detail.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        for key in &verdict.stale {
            let _ = writeln!(
                out,
                "\n[stale] {key}\n    no longer occurs: remove it from KNOWN_VIOLATIONS \
                 (tools/layers/src/known.rs)"
            );
        }
        if !verdict.new.is_empty() {
            let _ = writeln!(
                out,
                "\nFix the NEW violations (or, if a layering rule itself is wrong, change \
                 RULES in tools/layers/src/rules.rs); do not add them to KNOWN_VIOLATIONS."
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
            for note in &self.notes {
                let _ = writeln!(out, "    {note}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key: &str) -> Finding {
        Finding {
            key: key.to_owned(),
            detail: format!("detail of {key}"),
        }
    }

    #[test]
    fn verdict_splits_new_known_and_stale() {
        let mut report = Report {
            findings: vec![finding("b"), finding("a"), finding("a")],
            notes: Vec::new(),
        };
        report.normalize();
        assert_eq!(report.findings.len(), 2);
        let verdict = report.verdict(&["a", "gone"]);
        assert_eq!(verdict.new, vec![finding("b")]);
        assert_eq!(verdict.known, vec![finding("a")]);
        assert_eq!(verdict.stale, vec!["gone".to_owned()]);
        assert!(!verdict.is_clean());
        assert!(report.verdict(&["a", "b"]).is_clean());
        let text = report.render(&["a", "gone"]);
        assert!(text.contains("[NEW] b"));
        assert!(text.contains("[known] a"));
        assert!(text.contains("[stale] gone"));
    }
}
