//! `command-service --aggregate cart`: one aggregate's gRPC command API.
fn main() -> std::process::ExitCode {
    platform::host::run(
        "command-service",
        command_services::app::command_service_main,
    )
}
