//! Read-your-writes: a query may ask for at least version N of a stream and wait, bounded,
//! until the read model has it. The wait is woken by the projectors' PostgreSQL NOTIFY
//! (`readmodel_<projection>`, payload `<stream_id>:<version>`), not by polling: one LISTEN
//! connection per process fans notifications out to the waiting requests.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;

/// A notification: (channel, stream id, version).
type Note = (String, String, u64);

#[derive(Clone)]
pub struct VersionWatch {
    tx: broadcast::Sender<Note>,
    pub max_wait: Duration,
}

impl VersionWatch {
    /// Starts listening on the channels of `projections`; reconnects by itself.
    pub fn start(pool: PgPool, projections: &[&str], max_wait: Duration) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let channels: Vec<String> = projections
            .iter()
            .map(|p| read_model::notify_channel(p))
            .collect();
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&pool, &channels, &sender).await {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Self { tx, max_wait }
    }

    /// Waits until `current()` reports at least `version` for the stream, or `max_wait`
    /// passes. Returns whether it got there. `current` is read once up front and again after
    /// any missed notification, so a version that was already there returns at once.
    pub async fn wait_for<F, Fut>(
        &self,
        projection: &str,
        stream_id: &str,
        version: u64,
        current: F,
    ) -> Result<bool, sqlx::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64, sqlx::Error>>,
    {
        let channel = read_model::notify_channel(projection);
        let mut rx = self.tx.subscribe();
        if current().await? >= version {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Ok(current().await? >= version),
                Ok(Ok((c, id, v))) => {
                    if c == channel && id == stream_id && v >= version {
                        return Ok(true);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if current().await? >= version {
                        return Ok(true);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Ok(current().await? >= version)
                }
            }
        }
    }
}

async fn listen(
    pool: &PgPool,
    channels: &[String],
    tx: &broadcast::Sender<Note>,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await?;
    loop {
        let n = listener.recv().await?;
        if let Some((id, v)) = n.payload().rsplit_once(':') {
            if let Ok(v) = v.parse() {
                let _ = tx.send((n.channel().to_owned(), id.to_owned(), v));
            }
        }
    }
}
