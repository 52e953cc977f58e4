//! The one service host every binary's `main` calls: [`run`] owns the process (the tokio
//! runtime, telemetry set-up and shut-down, the exit code), [`serve`] a service's lifetime
//! (the shutdown token, readiness and the admin server, waiting for it at the end), and
//! [`Service::start`] retries a start-up dependency until it answers.

use crate::support::{init_tracing, retry_startup, serve_admin, shutdown_token, Readiness};
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Runs a binary's body on a multi-threaded tokio runtime with telemetry set up first and
/// flushed last; an error is logged as one line and the process exits with 1 (as a `main`
/// returning an error does).
pub fn run<F, Fut>(name: &'static str, body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        init_tracing();
        let result = body().await;
        if let Err(e) = &result {
            tracing::error!(error = %format!("{e:#}"), "{name} failed");
        }
        crate::support::shutdown_tracing();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        }
    })
}

/// What a running service's body gets from the host: the shutdown signal (SIGINT/SIGTERM)
/// and the readiness its admin server reports.
#[derive(Clone)]
pub struct Service {
    pub shutdown: CancellationToken,
    pub ready: Readiness,
}

impl Service {
    /// Retries a start-up step (connecting to a dependency) until it succeeds or shutdown
    /// is requested.
    pub async fn start<T, F, Fut>(&self, what: &str, step: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        retry_startup(what, &self.shutdown, step).await
    }
}

/// Serves `/healthz`, `/status` and `/metrics` on `admin_addr` while `body` runs, then
/// cancels the shutdown token and waits for the admin server. The body's error wins; else
/// the admin server's.
pub async fn serve<F, Fut>(admin_addr: SocketAddr, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Service) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let service = Service {
        shutdown: shutdown_token(),
        ready: Readiness::default(),
    };
    let shutdown = service.shutdown.clone();
    let admin = tokio::spawn(serve_admin(
        admin_addr,
        service.ready.clone(),
        shutdown.clone(),
    ));
    let result = body(service).await;
    shutdown.cancel();
    let admin = admin.await;
    result?;
    admin??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_maps_an_error_to_exit_1_and_success_to_0() {
        let failed = run("test", || async { anyhow::bail!("no store") });
        assert_eq!(format!("{failed:?}"), format!("{:?}", ExitCode::FAILURE));
        let ok = run("test", || async { Ok(()) });
        assert_eq!(format!("{ok:?}"), format!("{:?}", ExitCode::SUCCESS));
    }

    #[tokio::test]
    async fn serve_returns_the_body_error_after_stopping_the_admin_server() {
        let mut token = None;
        let result = serve("127.0.0.1:0".parse().unwrap(), |service| {
            token = Some(service.shutdown.clone());
            async move {
                assert!(!service.ready.is_ready());
                anyhow::bail!("no store")
            }
        })
        .await;
        assert_eq!(result.unwrap_err().to_string(), "no store");
        assert!(token.unwrap().is_cancelled());
    }
}
