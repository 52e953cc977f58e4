//! `bff`: the GraphQL API (run it behind Envoy).
fn main() -> std::process::ExitCode {
    platform::host::run("bff", bff::server::bff_main)
}
