//! Every subcommand of `commerce` answers `--help` (no stack needed). Being an integration
//! test of this package, it also makes `cargo test --workspace` build the `commerce` binary
//! that the end-to-end tests run.

use std::process::Command;

#[test]
fn every_subcommand_has_help() {
    let bin = env!("CARGO_BIN_EXE_commerce");
    for args in [
        vec![],
        vec!["events"],
        vec!["events", "export"],
        vec!["events", "tail"],
        vec!["stream"],
        vec!["stream", "show"],
        vec!["projections"],
        vec!["projections", "status"],
        vec!["projections", "rebuild"],
        vec!["projections", "verify"],
        vec!["projections", "reset"],
        vec!["dlq"],
        vec!["dlq", "list"],
        vec!["dlq", "replay"],
        vec!["kafka"],
        vec!["kafka", "republish"],
    ] {
        let out = Command::new(bin)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?} --help failed");
        assert!(text.contains("Usage: commerce"), "{args:?}: {text}");
    }
}
