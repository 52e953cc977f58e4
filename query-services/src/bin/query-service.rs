//! `query-service --service cart`: serves a read model over gRPC.
fn main() -> std::process::ExitCode {
    platform::host::run("query-service", query_services::app::query_service_main)
}
