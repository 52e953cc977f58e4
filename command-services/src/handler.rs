//! The one generic command handler every aggregate's service uses: load the stream, `decide`,
//! append with optimistic concurrency, and retry a bounded number of times on conflict by
//! reloading.
//!
//! Folded states are cached with their version, so a command costs one insert however long
//! the stream is: the first attempt decides on the cached state without reading, and the
//! unique `(stream_id, version)` index turns a stale cache into a conflict, never an
//! overwrite. A retry reads the events after the cached version.
//!
//! Idempotency: a command with an idempotency key is applied once; a retry with the same key
//! gets the first result back and appends nothing, even when the two race. A key belongs to
//! one stream and one caller ([`IdempotencyScope`]): the record is looked up only after the
//! caller was authorized on the stream, and another caller's (or another stream's) use of
//! the same key is a different record.
//!
//! Size: no command may produce an event whose CloudEvent encoding (what the relay hands to
//! the broker) exceeds [`MAX_EVENT_BYTES`]; such a command is refused with
//! `INVALID_ARGUMENT` and nothing is appended. The domain's text limits keep every real event
//! far below it; the guard makes sure the relay never meets a record the broker refuses.

use crate::error::CommandError;
use chrono::Utc;
use domain::Aggregate;
use event_schemas::{EventEnvelope, EventMeta};
use event_store::event_store::{
    EventStore, IdempotencyScope, IdempotentResult, SideWrite, StoreError,
};
use event_store::store::Store;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Largest encoded event a command may produce: 256 KiB, a quarter of Kafka's default
/// `message.max.bytes` (1 MB), so that envelope growth or a broker with a smaller limit
/// still has room.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Everything about a command besides the command itself.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub idempotency_key: Option<String>,
    pub meta: EventMeta,
    /// The command creates a stream whose id the service chose for it (a new cart): its
    /// idempotency key is scoped by the caller alone, since a retry gets a new id.
    pub creates_stream: bool,
}

/// A handled command: the stream and its version afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub stream_id: String,
    pub version: u64,
}

impl From<IdempotentResult> for CommandOutcome {
    fn from(r: IdempotentResult) -> Self {
        Self {
            stream_id: r.stream_id,
            version: r.version,
        }
    }
}

/// How many folded states to keep; the cache is cleared when it grows past this.
const CACHE_CAPACITY: usize = 10_000;

/// The generic handler for aggregate `A`, over a [`Store`] (MongoDB's by default).
pub struct CommandHandler<A: Aggregate, S = EventStore> {
    store: S,
    cache: Mutex<HashMap<String, (A, u64)>>,
    max_attempts: u32,
}

impl<A: Aggregate, S: Store> CommandHandler<A, S> {
    pub fn new(store: S, max_attempts: u32) -> Self {
        // Counters of rare events are exported from the start, at zero: a dashboard's rate()
        // sees the first conflict, and a scrape shows the series before it happens.
        metrics::counter!("command_conflicts_total", "aggregate" => A::STREAM_TYPE).increment(0);
        metrics::counter!("command_retries_total", "aggregate" => A::STREAM_TYPE).increment(0);
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
            max_attempts: max_attempts.max(1),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current state and version of a stream: the cached fold plus newer events.
    pub async fn load(&self, stream_id: &str) -> Result<(A, u64), CommandError> {
        let cached = self.cached(stream_id);
        let (mut state, mut version) = cached.unwrap_or_default();
        for env in self.load_events(stream_id, version).await? {
            let event: A::Event = env
                .decode()
                .map_err(|e| CommandError::Internal(format!("stored event: {e}")))?;
            state = state.evolve(&event);
            version = env.version;
        }
        Ok((state, version))
    }

    /// Time travel: the state folded from the events `keep` accepts, in order, stopping at
    /// the first it refuses; with the last applied envelope.
    pub async fn load_until(
        &self,
        stream_id: &str,
        keep: impl Fn(&EventEnvelope) -> bool,
    ) -> Result<(A, Vec<EventEnvelope>), CommandError> {
        let mut state = A::default();
        let mut applied = Vec::new();
        for env in self.load_events(stream_id, 0).await? {
            if !keep(&env) {
                break;
            }
            let event: A::Event = env
                .decode()
                .map_err(|e| CommandError::Internal(format!("stored event: {e}")))?;
            state = state.evolve(&event);
            applied.push(env);
        }
        Ok((state, applied))
    }

    /// The events of this aggregate's stream after `after`: an id of another aggregate's
    /// stream is `NotFound` (a command on it is refused before anything is appended).
    async fn load_events(
        &self,
        stream_id: &str,
        after: u64,
    ) -> Result<Vec<EventEnvelope>, CommandError> {
        self.store
            .load_typed(A::STREAM_TYPE, stream_id, after)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("no {} {stream_id}", A::STREAM_TYPE)))
    }

    fn cached(&self, stream_id: &str) -> Option<(A, u64)> {
        self.cache.lock().ok()?.get(stream_id).cloned()
    }

    fn remember(&self, stream_id: &str, state: A, version: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(stream_id.to_owned(), (state, version));
        }
    }

    /// Handles one command on one stream, and records it in the metrics
    /// (`commands_total{aggregate, outcome}`, `command_duration_seconds{aggregate}`).
    pub async fn handle(
        &self,
        stream_id: &str,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandOutcome, CommandError> {
        self.handle_with(stream_id, command, ctx, &[]).await
    }

    /// [`CommandHandler::handle`] with writes to other collections in the append's
    /// transaction (reservations); a taken reservation is not retried.
    pub async fn handle_with(
        &self,
        stream_id: &str,
        command: &A::Command,
        ctx: &CommandContext,
        side: &[SideWrite],
    ) -> Result<CommandOutcome, CommandError> {
        let started = std::time::Instant::now();
        let result = self.handle_inner(stream_id, command, ctx, side).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CommandError::Conflict) => "conflict",
            Err(CommandError::Unavailable(_)) => "unavailable",
            Err(CommandError::Internal(_)) => "internal",
            Err(_) => "rejected",
        };
        metrics::counter!("commands_total", "aggregate" => A::STREAM_TYPE, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("command_duration_seconds", "aggregate" => A::STREAM_TYPE)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn handle_inner(
        &self,
        stream_id: &str,
        command: &A::Command,
        ctx: &CommandContext,
        side: &[SideWrite],
    ) -> Result<CommandOutcome, CommandError> {
        let key = ctx.idempotency_key.as_deref().filter(|k| !k.is_empty());
        if let Some(key) = key {
            domain::values::check_idempotency_key(key)?;
        }
        let record = key.map(|key| {
            IdempotencyScope {
                stream_type: A::STREAM_TYPE,
                stream_id: (!ctx.creates_stream).then_some(stream_id),
                actor: &ctx.meta.actor,
                key,
            }
            .record_id()
        });
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Optimistic: the first attempt trusts the cached fold (no read); a stale cache
            // shows up as a conflict on append, and the retry reads the events it missed.
            let cached = if attempt == 1 {
                self.cached(stream_id)
            } else {
                None
            };
            let (state, version) = match cached {
                Some(hit) => hit,
                None => self.load(stream_id).await?,
            };
            state
                .authorize(&ctx.meta.actor)
                .map_err(|e| CommandError::domain(&e))?;
            // Only an authorized caller learns what its key did (a retry after a conflict was
            // looked up already, below).
            if let (1, Some(record)) = (attempt, &record) {
                if let Some(done) = self.store.idempotent_result(record).await? {
                    return Ok(done.into());
                }
            }
            let events = state
                .decide(command)
                .map_err(|e| CommandError::domain(&e))?;
            if events.is_empty() {
                return Ok(CommandOutcome {
                    stream_id: stream_id.to_owned(),
                    version,
                });
            }
            let now = Utc::now();
            // The request's span (a child of the caller's): the events' consumers join it.
            let traceparent = platform::trace_context::current_traceparent();
            let envelopes = events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    EventEnvelope::new(
                        A::STREAM_TYPE,
                        stream_id,
                        version + 1 + i as u64,
                        e,
                        &ctx.meta,
                        now,
                    )
                    .map(|env| EventEnvelope {
                        traceparent: traceparent.clone(),
                        ..env
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CommandError::Internal(e.to_string()))?;
            check_sizes(&envelopes)?;
            let new_version = version + envelopes.len() as u64;
            match self
                .store
                .append_with(&envelopes, record.as_deref(), side)
                .await
            {
                Ok(()) => {
                    let state = events.iter().fold(state, A::evolve);
                    self.remember(stream_id, state, new_version);
                    return Ok(CommandOutcome {
                        stream_id: stream_id.to_owned(),
                        version: new_version,
                    });
                }
                Err(StoreError::Conflict) => {
                    metrics::counter!("command_conflicts_total", "aggregate" => A::STREAM_TYPE)
                        .increment(1);
                    // The same idempotency key may have won the race.
                    if let Some(record) = &record {
                        if let Some(done) = self.store.idempotent_result(record).await? {
                            return Ok(done.into());
                        }
                    }
                    if attempt >= self.max_attempts {
                        tracing::debug!(stream_id, attempt, "giving up after conflicts");
                        return Err(CommandError::Conflict);
                    }
                    metrics::counter!("command_retries_total", "aggregate" => A::STREAM_TYPE)
                        .increment(1);
                    let backoff = rand::rng().random_range(1..=(5 * attempt as u64).min(50));
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Refuses events whose CloudEvent encoding exceeds [`MAX_EVENT_BYTES`].
fn check_sizes(envelopes: &[EventEnvelope]) -> Result<(), CommandError> {
    for env in envelopes {
        let size = event_schemas::cloudevents::encode(env).len();
        if size > MAX_EVENT_BYTES {
            return Err(CommandError::InvalidArgument(format!(
                "the command would record a {} event of {size} bytes; at most {MAX_EVENT_BYTES} are accepted",
                env.event_type
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::now_v7(),
            stream_type: "product".into(),
            stream_id: uuid::Uuid::now_v7().to_string(),
            version: 1,
            event_type: "ProductUpdated".into(),
            schema_version: 1,
            occurred_at: Utc::now(),
            correlation_id: EventMeta::default().correlation_id,
            causation_id: None,
            actor: "admin:x".into(),
            data,
            traceparent: None,
        }
    }

    #[test]
    fn events_larger_than_the_bound_are_refused() {
        let small = envelope(serde_json::json!({ "name": "x".repeat(10_000) }));
        assert!(check_sizes(&[small]).is_ok());
        let big = envelope(serde_json::json!({ "name": "x".repeat(MAX_EVENT_BYTES) }));
        assert!(matches!(
            check_sizes(&[big]),
            Err(CommandError::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_largest_product_the_domain_accepts_fits() {
        use domain::product::*;
        use domain::values::*;
        let fields = ProductFields {
            name: ProductName::parse(&"\u{10348}".repeat(ProductName::MAX)).unwrap(),
            description: Description::parse(&"\u{10348}".repeat(Description::MAX)).unwrap(),
            categories: (0..MAX_CATEGORIES)
                .map(|i| Category::parse(&format!("{i}{}", "\u{10348}".repeat(90))).unwrap())
                .collect(),
            attributes: (0..MAX_ATTRIBUTES)
                .map(|i| {
                    (
                        AttributeKey::parse(&format!("{i}{}", "\u{10348}".repeat(90))).unwrap(),
                        AttributeValue::parse(&"\u{10348}".repeat(AttributeValue::MAX)).unwrap(),
                    )
                })
                .collect(),
            brand: Some(BrandName::parse(&"\u{10348}".repeat(BrandName::MAX)).unwrap()),
        };
        let events = Product::default()
            .decide(&ProductCommand::Create {
                product_id: ProductId::generate(),
                details: fields,
                price: Money::new(1, Currency::parse("EUR").unwrap()).unwrap(),
                initial_stock: 1,
            })
            .unwrap();
        let env = EventEnvelope::new(
            "product",
            "p",
            1,
            &events[0],
            &EventMeta::default(),
            Utc::now(),
        )
        .unwrap();
        let size = event_schemas::cloudevents::encode(&env).len();
        assert!(size < MAX_EVENT_BYTES, "{size}");
    }

    /// The handler over the in-memory store: decide, append, idempotency, conflicts.
    mod over_a_store {
        use super::*;
        use domain::cart::{Cart, CartCommand};
        use domain::values::{CartId, ProductId, Quantity, UserId};
        use event_store::memory::MemoryStore;

        fn handler() -> CommandHandler<Cart, MemoryStore> {
            CommandHandler::new(MemoryStore::new(), 3)
        }

        fn as_actor(actor: &str, key: Option<&str>) -> CommandContext {
            CommandContext {
                idempotency_key: key.map(str::to_owned),
                meta: EventMeta {
                    actor: actor.to_owned(),
                    ..EventMeta::default()
                },
                creates_stream: false,
            }
        }

        fn add(product: ProductId, n: i64) -> CartCommand {
            CartCommand::AddItem {
                product_id: product,
                quantity: Quantity::new(n).unwrap(),
            }
        }

        async fn new_cart(h: &CommandHandler<Cart, MemoryStore>, owner: Option<UserId>) -> String {
            let cart_id = CartId::generate();
            let id = cart_id.to_string();
            let create = CartCommand::Create {
                cart_id,
                customer_id: owner,
            };
            h.handle(&id, &create, &as_actor("anonymous", None))
                .await
                .unwrap();
            id
        }

        #[tokio::test]
        async fn a_command_appends_its_events_at_the_next_version() {
            let h = handler();
            let cart = new_cart(&h, None).await;
            let out = h
                .handle(
                    &cart,
                    &add(ProductId::generate(), 2),
                    &as_actor("anonymous", None),
                )
                .await
                .unwrap();
            assert_eq!(out.version, 2);
            let events = h.store().events(&cart);
            assert_eq!(
                events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
                ["CartCreated", "CartItemAdded"]
            );
            assert_eq!(h.load(&cart).await.unwrap().1, 2);
        }

        #[tokio::test]
        async fn a_repeated_key_answers_the_first_outcome_and_appends_nothing() {
            let h = handler();
            let cart = new_cart(&h, None).await;
            let ctx = as_actor("anonymous", Some("k-1"));
            let product = ProductId::generate();
            let first = h.handle(&cart, &add(product, 1), &ctx).await.unwrap();
            let again = h.handle(&cart, &add(product, 1), &ctx).await.unwrap();
            assert_eq!(first, again);
            assert_eq!(h.store().events(&cart).len(), 2);
        }

        #[tokio::test]
        async fn a_stale_fold_conflicts_once_and_the_retry_reads_what_it_missed() {
            let writer = handler();
            let cart = new_cart(&writer, None).await;
            // Another writer appends behind this handler's cached fold.
            let product = ProductId::generate();
            let behind = writer.store().events(&cart);
            let mut sneaked = behind[0].clone();
            sneaked.version = 2;
            sneaked.event_id = uuid::Uuid::now_v7();
            sneaked.event_type = "CartItemAdded".into();
            sneaked.data = serde_json::json!({ "product_id": product, "quantity": 1 });
            writer
                .store()
                .append_with(&[sneaked], None, &[])
                .await
                .unwrap();
            let out = writer
                .handle(&cart, &add(product, 1), &as_actor("anonymous", None))
                .await
                .unwrap();
            assert_eq!(out.version, 3, "appended after the event it had not seen");
            let (state, _) = writer.load(&cart).await.unwrap();
            assert_eq!(state.lines.get(&product).map(|q| q.get()), Some(2));
        }

        #[tokio::test]
        async fn a_refused_command_appends_nothing() {
            let h = handler();
            let owner = UserId::generate();
            let cart = new_cart(&h, Some(owner)).await;
            let stranger = format!("user:{}", UserId::generate());
            let refused = h
                .handle(
                    &cart,
                    &add(ProductId::generate(), 1),
                    &as_actor(&stranger, None),
                )
                .await;
            assert!(
                matches!(refused, Err(CommandError::PermissionDenied(_))),
                "{refused:?}"
            );
            let unknown = h
                .handle(
                    &CartId::generate().to_string(),
                    &add(ProductId::generate(), 1),
                    &as_actor("anonymous", None),
                )
                .await;
            assert!(unknown.is_err(), "{unknown:?}");
            assert_eq!(h.store().events(&cart).len(), 1);
        }

        #[tokio::test]
        async fn another_aggregates_stream_is_not_found() {
            let h = handler();
            let cart = new_cart(&h, None).await;
            let mut foreign = h.store().events(&cart)[0].clone();
            foreign.stream_type = "order".into();
            foreign.stream_id = uuid::Uuid::now_v7().to_string();
            h.store()
                .append_with(&[foreign.clone()], None, &[])
                .await
                .unwrap();
            assert!(matches!(
                h.load(&foreign.stream_id).await,
                Err(CommandError::NotFound(_))
            ));
        }
    }
}
