//! `relay`: publishes every committed event from the MongoDB store to Kafka.
fn main() -> std::process::ExitCode {
    platform::host::run("relay", command_services::app::relay_main)
}
