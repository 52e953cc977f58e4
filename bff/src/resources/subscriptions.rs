//! The subscriptions resource, fed from Kafka (see `feed`): `orderStatusChanged(orderId)`
//! and `cartChanged(cartId)` for their owner, `orderPlaced` for the back office. Each
//! subscription:
//! - is authorized when it starts, against the read model (and, for an order not projected
//!   yet, against its `OrderPlaced` event before anything is sent; a cart not projected yet
//!   is awaited in the read model, and checked there before anything is sent);
//! - starts with the current state, so a client that reconnects is up to date at once;
//! - only ever moves forward: an event at or below the version it last sent (a broker replay,
//!   a duplicate from the relay's at-least-once delivery) is dropped, never sent as new.

use super::cart::Cart;
use super::common::MoneyView;
use super::order::{load_order, Order};
use super::types::{Field, OrderStatus, WireEnum};
use crate::auth::Caller;
use crate::clients::Backends;
use crate::context::{backends, caller, live, RequestContext};
use crate::error::{gql, BffError};
use crate::feed::{next_event, version_of, Lagged};
use async_graphql::{Context, Result, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use domain::order::OrderEvent;
use domain::values::{CartId, OrderId};
use futures::Stream;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many bounded waits `cartChanged` spends on a cart not projected yet before it
/// follows the feed alone.
const FIRST_WAITS: u32 = 30;

#[derive(SimpleObject)]
pub struct OrderStatusChange {
    pub order_id: ID,
    pub status: Field<OrderStatus>,
    /// The order's stream version at this status.
    pub version: i64,
}

#[derive(SimpleObject)]
pub struct PlacedOrder {
    pub order_id: ID,
    pub customer_id: ID,
    pub total: MoneyView,
    pub item_count: i64,
    pub placed_at: DateTime<Utc>,
}

/// The owner of a context for a stream resolved outside a request (subscriptions run on).
fn owned_ctx(ctx: &Context<'_>) -> (Caller, Backends, String) {
    let rc = ctx.data_opt::<RequestContext>();
    (
        caller(ctx).clone(),
        backends(ctx).clone(),
        rc.map(|r| r.correlation_id.clone()).unwrap_or_default(),
    )
}

type Items<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Status changes of one of the caller's orders, starting with its current status (or,
    /// for an order not placed yet, with `PLACED`). Admins may follow any order.
    async fn order_status_changed(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<Items<OrderStatusChange>> {
        gql(async move {
            let claims = caller(ctx).user()?.clone();
            let id = OrderId::parse(&order_id)?.to_string();
            let rx = live(ctx)?.subscribe();
            let (who, backends, _) = owned_ctx(ctx);
            // The current state, when the order is already in the read model.
            let current = match load_order(&backends, &id, 0).await {
                Ok(o) => {
                    who.check_owner(Some(&o.customer_id))?;
                    Some(o)
                }
                Err(BffError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let stream = async_stream(move |y| async move {
                let follow = OrderFollow {
                    id,
                    who,
                    backends,
                    claims,
                };
                follow.run(y, rx, current).await;
            });
            Ok(stream)
        }
        .await)
    }

    /// The cart after each change, starting with its current state. A customer's cart is
    /// theirs alone; an anonymous cart is followed by whoever holds its id. A cart created a
    /// moment ago and not projected yet is waited for (like an order not placed yet): nothing
    /// is sent until the read model has it and it is known to be the caller's.
    async fn cart_changed(&self, ctx: &Context<'_>, cart_id: ID) -> Result<Items<Cart>> {
        gql(async move {
            let id = CartId::parse(&cart_id)?.to_string();
            let mut rx = live(ctx)?.subscribe();
            let (who, backends, _) = owned_ctx(ctx);
            let first = match get_cart(&backends, &id, 0).await {
                Ok(c) => {
                    who.check_owner(Some(c.customer_id.as_str()).filter(|c| !c.is_empty()))?;
                    Some(c)
                }
                Err(BffError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let stream = async_stream(move |y| async move {
                let mut sent = 0;
                if let Some(first) = first {
                    sent = first.version;
                    y.send(Ok(first.into())).await;
                }
                // Not projected yet: its first version is awaited in the read model (each
                // wait bounded and woken by the projector's NOTIFY) as well as on the feed,
                // since its creation may have gone past on the feed already. After
                // FIRST_WAITS waits, only the feed is followed (a cart that does not exist
                // costs nothing more).
                let mut waits = 0;
                loop {
                    let next = if sent == 0 && waits < FIRST_WAITS {
                        waits += 1;
                        tokio::select! {
                            e = next_event(&mut rx, "cart", &id, sent) => version_of(e),
                            c = get_cart(&backends, &id, 1) => match c {
                                Ok(c) => Some(Ok(c.version)),
                                Err(BffError::NotFound(_) | BffError::Stale(_)) => continue,
                                Err(_) => {
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                    continue;
                                }
                            },
                        }
                    } else {
                        version_of(next_event(&mut rx, "cart", &id, sent).await)
                    };
                    let at_least = match next {
                        None => return,
                        Some(Ok(version)) => version,
                        Some(Err(Lagged)) => sent + 1,
                    };
                    // The read model at (at least) that version: read-your-writes.
                    let Ok(cart) = get_cart(&backends, &id, at_least).await else {
                        continue;
                    };
                    if cart.version <= sent {
                        continue;
                    }
                    // The cart was claimed by someone else (FORBIDDEN), or the caller's token
                    // was no good to begin with (UNAUTHENTICATED): stop following it.
                    if let Err(e) =
                        who.check_owner(Some(cart.customer_id.as_str()).filter(|c| !c.is_empty()))
                    {
                        use async_graphql::ErrorExtensions;
                        y.send(Err(e.extend())).await;
                        return;
                    }
                    sent = cart.version;
                    y.send(Ok(cart.into())).await;
                }
            });
            Ok(stream)
        }
        .await)
    }

    /// Every order placed from now on (back office).
    async fn order_placed(&self, ctx: &Context<'_>) -> Result<Items<PlacedOrder>> {
        gql(async move {
            caller(ctx).admin()?;
            let mut rx = live(ctx)?.subscribe();
            let stream = async_stream(move |y| async move {
                loop {
                    let env = match rx.recv().await {
                        Ok(env) => env,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "orderPlaced subscriber lagged");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    // OrderPlaced is always version 1: a replayed copy is recognised by the
                    // event id.
                    if env.stream_type != "order" || env.version != 1 {
                        continue;
                    }
                    if let Ok(OrderEvent::OrderPlaced(p)) = env.decode::<OrderEvent>() {
                        y.send(Ok(PlacedOrder {
                            order_id: ID(p.order_id.to_string()),
                            customer_id: ID(p.customer_id.to_string()),
                            total: MoneyView {
                                amount_minor: p.total.amount_minor(),
                                currency: p.total.currency().as_str().to_owned(),
                            },
                            item_count: p.lines.iter().map(|l| i64::from(l.quantity.get())).sum(),
                            placed_at: env.occurred_at,
                        }))
                        .await;
                    }
                }
            });
            Ok(stream)
        }
        .await)
    }
}

/// One `orderStatusChanged` subscription, followed on the feed.
struct OrderFollow {
    id: String,
    who: Caller,
    backends: Backends,
    claims: platform::auth::Claims,
}

impl OrderFollow {
    /// Sends the current status (if the order is known), then each change, until the feed
    /// closes, the client goes away, or the order turns out not to be the caller's.
    async fn run(
        self,
        y: Yield<OrderStatusChange>,
        mut rx: broadcast::Receiver<std::sync::Arc<event_schemas::EventEnvelope>>,
        current: Option<Order>,
    ) {
        let mut sent: u64 = 0;
        let mut status: Option<OrderStatus> = None;
        let mut authorized = current.is_some() || self.claims.is_admin();
        if let Some(o) = current {
            sent = o.version as u64;
            status = o.status.as_ref().ok().copied();
            y.send(Ok(OrderStatusChange {
                order_id: ID(self.id.clone()),
                status: o.status,
                version: o.version,
            }))
            .await;
        }
        loop {
            let env = match next_event(&mut rx, "order", &self.id, sent).await {
                None => return,
                Some(Ok(env)) => env,
                Some(Err(Lagged)) => {
                    // Missed events: the read model has the current state.
                    match load_order(&self.backends, &self.id, sent + 1).await {
                        Ok(o) if self.who.check_owner(Some(&o.customer_id)).is_ok() => {
                            authorized = true;
                            if o.status.as_ref().ok() != status.as_ref() && o.version as u64 > sent
                            {
                                sent = o.version as u64;
                                status = o.status.as_ref().ok().copied();
                                y.send(Ok(OrderStatusChange {
                                    order_id: ID(self.id.clone()),
                                    status: o.status,
                                    version: o.version,
                                }))
                                .await;
                            }
                            continue;
                        }
                        Ok(_) => {
                            y.send(Err(forbidden())).await;
                            return;
                        }
                        Err(_) => continue,
                    }
                }
            };
            let Ok(event) = env.decode::<OrderEvent>() else {
                continue;
            };
            if !authorized {
                // Nothing is sent for an order until it is known to be the caller's.
                match &event {
                    OrderEvent::OrderPlaced(p) if p.customer_id.to_string() == self.claims.sub => {
                        authorized = true;
                    }
                    _ => {
                        y.send(Err(forbidden())).await;
                        return;
                    }
                }
            }
            sent = env.version;
            if let Some(s) = event.status_after() {
                let now = OrderStatus::field(s.as_str());
                status = now.as_ref().ok().copied();
                y.send(Ok(OrderStatusChange {
                    order_id: ID(self.id.clone()),
                    status: now,
                    version: env.version as i64,
                }))
                .await;
            }
        }
    }
}

fn forbidden() -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    BffError::Forbidden("this belongs to another customer".into()).extend()
}

async fn get_cart(
    backends: &Backends,
    id: &str,
    at_least: u64,
) -> Result<proto::cart::Cart, BffError> {
    Ok(backends
        .cart_queries
        .clone()
        .get_cart(proto::cart::GetCartRequest {
            cart_id: id.to_owned(),
            at_least_version: at_least,
        })
        .await?
        .into_inner())
}

/// A stream driven by a task writing into a bounded channel; the task stops when the client
/// goes away (the receiver is dropped).
fn async_stream<T, F, Fut>(f: F) -> Items<T>
where
    T: Send + 'static,
    F: FnOnce(Yield<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(f(Yield(tx)));
    let stream = tokio_stream_from(rx, task);
    Box::pin(stream)
}

/// The sending half given to a subscription's task.
pub struct Yield<T>(tokio::sync::mpsc::Sender<Result<T>>);

impl<T> Yield<T> {
    async fn send(&self, item: Result<T>) {
        let _ = self.0.send(item).await;
    }
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<Result<T>>,
    task: tokio::task::JoinHandle<()>,
) -> impl Stream<Item = Result<T>> + Send {
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let guard = Abort(task);
    futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|item| (item, (rx, guard)))
    })
}
