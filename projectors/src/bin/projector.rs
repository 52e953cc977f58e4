//! `projector --projection cart`: builds a PostgreSQL read model from Kafka.
fn main() -> std::process::ExitCode {
    platform::host::run("projector", projectors::app::projector_main)
}
