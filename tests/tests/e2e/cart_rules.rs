//! The cart's projection rules are written once and held equal on both paths: for random
//! histories of several carts (decided by the domain, so every stream is one a real cart
//! could have), with redeliveries mixed in and the batches cut at random, the set-based path
//! (`cart_bulk`, used by the live projector and rebuilds) leaves exactly the rows the
//! per-event path (`CartProjection::apply`) leaves, and refuses exactly the same events.
//! Against the stack's PostgreSQL, in two scratch schemas rolled back after each case.

use chrono::{Duration as Span, Utc};
use domain::cart::{Cart, CartCommand, CheckoutPayment};
use domain::values::{
    CardBrand, CardLast4, CartId, Currency, Money, OrderId, PaymentToken, ProductId, Quantity,
    UserId,
};
use domain::Aggregate;
use event_schemas::{EventEnvelope, EventMeta};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqlx::{Connection, PgConnection};

/// One step of a generated history.
#[derive(Debug, Clone)]
enum Op {
    /// A command on cart `cart` (product `product`, quantity `n` where it needs them).
    Command {
        cart: usize,
        kind: u8,
        product: u128,
        n: i64,
    },
    /// An event already delivered arrives again.
    Redeliver(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..9u8, 0..4u128, 1..5i64)
            .prop_map(|(cart, kind, product, n)| Op::Command { cart, kind, product, n }),
        1 => (0..64usize).prop_map(Op::Redeliver),
    ]
}

fn command(kind: u8, cart_id: CartId, owner: UserId, product: u128, n: i64) -> CartCommand {
    let product_id = ProductId::from(uuid::Uuid::from_u128(product + 1));
    let quantity = Quantity::new(n).unwrap();
    let eur = Currency::parse("EUR").unwrap();
    match kind {
        0 => CartCommand::Create {
            cart_id,
            customer_id: None,
        },
        1 | 2 => CartCommand::AddItem {
            product_id,
            quantity,
        },
        3 => CartCommand::ChangeItemQuantity {
            product_id,
            quantity,
        },
        4 => CartCommand::RemoveItem { product_id },
        5 => CartCommand::Clear,
        6 => CartCommand::Claim { customer_id: owner },
        7 => CartCommand::CheckOut {
            order_id: OrderId::from(uuid::Uuid::from_u128(u128::from(n.unsigned_abs()))),
            prices: (0..4u128)
                .map(|p| {
                    let id = ProductId::from(uuid::Uuid::from_u128(p + 1));
                    (id, Money::new(100 * (p as i64 + 1), eur).unwrap())
                })
                .collect(),
            payment: CheckoutPayment {
                token: PaymentToken::parse("pm_test").unwrap(),
                brand: CardBrand::parse("visa").unwrap(),
                last4: CardLast4::parse("4242").unwrap(),
            },
        },
        _ => CartCommand::Delete,
    }
}

/// The envelopes a history produces, in delivery order (redeliveries included).
fn deliveries(ops: &[Op]) -> Vec<EventEnvelope> {
    let owner = UserId::from(uuid::Uuid::from_u128(7));
    let carts: Vec<CartId> = (0..3)
        .map(|i| CartId::from(uuid::Uuid::from_u128(100 + i)))
        .collect();
    let mut states: Vec<(Cart, u64)> = vec![(Cart::default(), 0); carts.len()];
    let mut out: Vec<EventEnvelope> = Vec::new();
    let start = Utc::now();
    for o in ops {
        match o {
            Op::Redeliver(i) if !out.is_empty() => {
                let again = out[i % out.len()].clone();
                out.push(again);
            }
            Op::Redeliver(_) => {}
            Op::Command {
                cart,
                kind,
                product,
                n,
            } => {
                let (state, version) = &mut states[*cart];
                // A cart is created first; after that any command may come.
                let kind = if *version == 0 { 0 } else { *kind };
                let cmd = command(kind, carts[*cart], owner, *product, *n);
                let Ok(events) = state.decide(&cmd) else {
                    continue;
                };
                for e in events {
                    *version += 1;
                    let at = start + Span::milliseconds(out.len() as i64);
                    let env = EventEnvelope::new(
                        "cart",
                        &carts[*cart].to_string(),
                        *version,
                        &e,
                        &EventMeta::default(),
                        at,
                    )
                    .unwrap();
                    *state = state.clone().evolve(&e);
                    out.push(env);
                }
            }
        }
    }
    out
}

type CartRows = Vec<(uuid::Uuid, Option<uuid::Uuid>, String, i64, String, String)>;
type LineRows = Vec<(uuid::Uuid, uuid::Uuid, i32, i64, i64)>;

async fn rows(conn: &mut PgConnection) -> (CartRows, LineRows) {
    let carts = sqlx::query_as(
        "SELECT id, customer_id, status, version, created_at::text, updated_at::text
         FROM carts ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let lines = sqlx::query_as(
        "SELECT cart_id, product_id, quantity, added_version, version
         FROM cart_lines ORDER BY cart_id, product_id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (carts, lines)
}

async fn scratch(conn: &mut PgConnection, schema: &str) {
    for stmt in [
        format!("CREATE SCHEMA {schema}"),
        format!("CREATE TABLE {schema}.carts (LIKE public.carts INCLUDING ALL)"),
        format!("CREATE TABLE {schema}.cart_lines (LIKE public.cart_lines INCLUDING ALL)"),
        format!(
            "ALTER TABLE {schema}.cart_lines ADD FOREIGN KEY (cart_id)
             REFERENCES {schema}.carts (id) ON DELETE CASCADE"
        ),
    ] {
        sqlx::query(&stmt).execute(&mut *conn).await.unwrap();
    }
}

/// Both paths over one delivery order, batches cut at `cuts`; their rows and refusals.
async fn both_paths(
    url: &str,
    envs: &[EventEnvelope],
    cuts: &[usize],
) -> (
    (CartRows, LineRows),
    (CartRows, LineRows),
    Vec<bool>,
    Vec<bool>,
) {
    use projectors::runtime::Projection;
    let mut conn = PgConnection::connect(url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    scratch(&mut tx, "rules_per_event").await;
    scratch(&mut tx, "rules_bulk").await;
    sqlx::query("SET LOCAL search_path TO rules_per_event")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut per_event_refused = Vec::new();
    for env in envs {
        sqlx::query("SAVEPOINT one")
            .execute(&mut *tx)
            .await
            .unwrap();
        let refused = projectors::cart::CartProjection
            .apply(&mut tx, env)
            .await
            .is_err();
        let end = if refused {
            "ROLLBACK TO SAVEPOINT one"
        } else {
            "RELEASE SAVEPOINT one"
        };
        sqlx::query(end).execute(&mut *tx).await.unwrap();
        per_event_refused.push(refused);
    }
    let per_event = rows(&mut tx).await;
    sqlx::query("SET LOCAL search_path TO rules_bulk")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut bulk_refused = Vec::new();
    let mut from = 0;
    for cut in cuts.iter().copied().chain([envs.len()]) {
        let to = cut.clamp(from, envs.len());
        if to > from {
            let out = projectors::cart_bulk::apply_batch(&mut tx, &envs[from..to])
                .await
                .unwrap();
            bulk_refused.extend(out.iter().map(Option::is_some));
        }
        from = to;
    }
    let bulk = rows(&mut tx).await;
    tx.rollback().await.unwrap();
    (per_event, bulk, per_event_refused, bulk_refused)
}

#[test]
fn the_set_based_path_equals_the_per_event_path() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (the stack's stack.env sets it)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(op(), 1..60),
        prop::collection::vec(0..80usize, 0..6),
    );
    runner
        .run(&strategy, |(ops, mut cuts)| {
            cuts.sort_unstable();
            let envs = deliveries(&ops);
            let (per_event, bulk, refused_a, refused_b) =
                rt.block_on(both_paths(&url, &envs, &cuts));
            prop_assert_eq!(
                &per_event,
                &bulk,
                "rows differ for {} deliveries",
                envs.len()
            );
            prop_assert_eq!(refused_a, refused_b);
            Ok(())
        })
        .unwrap();
    // The histories are not trivial: the cases above ended with carts and lines.
    let ops: Vec<Op> = (0..40)
        .map(|i| Op::Command {
            cart: i % 3,
            kind: (i % 9) as u8,
            product: (i % 4) as u128,
            n: 2,
        })
        .collect();
    let envs = deliveries(&ops);
    let (per_event, _, _, _) = rt.block_on(both_paths(&url, &envs, &[]));
    assert!(!per_event.0.is_empty(), "{per_event:?}");
}
