//! The architecture check on this workspace: fails on a layering violation or module cycle
//! not in KNOWN_VIOLATIONS, and on a KNOWN_VIOLATIONS entry that no longer occurs.

#[test]
fn workspace_layers_and_module_cycles() {
    let report = layers::analyze(&layers::default_workspace_root()).unwrap();
    let text = report.render(layers::KNOWN_VIOLATIONS);
    assert!(
        report.verdict(layers::KNOWN_VIOLATIONS).is_clean(),
        "architecture check failed:\n{text}"
    );
}
