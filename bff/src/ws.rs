//! graphql-ws connections with the edge's rules: every message a client sends counts against
//! a per-client rate (`WS_MESSAGES_PER_SECOND`, burst twice that; Envoy sees only the
//! upgrade), and a connection signed in with an access token is closed when the token
//! expires. Both end the connection with a close frame: 4401 (`token expired`) or 4429
//! (`too many messages`).

use futures::{SinkExt, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};

/// Per-client message rate of graphql-ws connections.
#[derive(Clone)]
pub struct WsLimiter(Arc<DefaultKeyedRateLimiter<String>>);

impl WsLimiter {
    pub fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Self(Arc::new(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst),
        )))
    }

    fn admit(&self, client: &str) -> bool {
        if self.0.len() > 100_000 {
            self.0.retain_recent();
        }
        self.0.check_key(&client.to_owned()).is_ok()
    }
}

/// When a connection's token expires: set by `connection_init`, read by the connection.
#[derive(Clone, Default)]
pub struct Expiry(Arc<tokio::sync::watch::Sender<Option<i64>>>);

impl Expiry {
    /// The connection is signed in with a token valid until `exp` (unix seconds).
    pub fn set(&self, exp: i64) {
        self.0.send_replace(Some(exp));
    }

    async fn reached(&self) {
        let mut rx = self.0.subscribe();
        let exp = loop {
            if let Some(exp) = *rx.borrow_and_update() {
                break exp;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        };
        let left = exp - chrono::Utc::now().timestamp();
        if left > 0 {
            tokio::time::sleep(Duration::from_secs(left as u64)).await;
        }
    }
}

type CloseReason = Arc<Mutex<Option<(u16, &'static str)>>>;

/// Serves one graphql-ws connection; `init` answers `connection_init` (and sets `expiry`).
pub async fn serve<E, F, Fut>(
    socket: WebSocket,
    schema: E,
    protocol: GraphQLProtocol,
    client: String,
    limiter: WsLimiter,
    expiry: Expiry,
    init: F,
) where
    E: async_graphql::Executor,
    F: FnOnce(serde_json::Value) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = async_graphql::Result<async_graphql::Data>> + Send + 'static,
{
    let (mut sink, stream) = socket.split();
    let reason: CloseReason = Arc::default();
    let expired = {
        let reason = reason.clone();
        async move {
            expiry.reached().await;
            set_reason(&reason, 4401, "token expired");
        }
    };
    let input = {
        let reason = reason.clone();
        stream
            .take_while(move |msg| {
                let counted = matches!(msg, Ok(Message::Text(_) | Message::Binary(_)));
                let ok = !counted || limiter.admit(&client);
                if !ok {
                    metrics::counter!("ws_messages_throttled_total").increment(1);
                    set_reason(&reason, 4429, "too many messages");
                }
                std::future::ready(ok)
            })
            .take_until(expired)
    };
    GraphQLWebSocket::new_with_pair(&mut sink, input, schema, protocol)
        .on_connection_init(init)
        .serve()
        .await;
    let why = *reason.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((code, text)) = why {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: text.into(),
            })))
            .await;
    }
    let _ = sink.close().await;
}

fn set_reason(reason: &CloseReason, code: u16, text: &'static str) {
    let mut r = reason.lock().unwrap_or_else(|p| p.into_inner());
    r.get_or_insert((code, text));
}
