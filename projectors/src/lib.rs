//! The read side's writers.
//!
//! - [`runtime`]: the one Kafka consumer runtime every read model uses: batches, checkpoints
//!   in the same PostgreSQL transaction, dead letters.
//! - [`cart`]: the `carts` and `cart_lines` read model ([`cart_bulk`]: the same, a batch at a
//!   time, for rebuilds).
//! - [`catalogue`]: the `products` read model.
//! - [`orders`]: the `orders`, `order_lines` and `payments` read models.
//! - [`notifications`]: customer notifications (order and account mails), and [`mailer`], the
//!   SMTP sender delivering them.
//! - [`app`]: the `projector` binary's wiring.
//! - [`parked`]: streams parked behind a poison event, and their held events.
//! - [`registry`], [`lag`], [`rebuild`]: the read models by name, consumer lag, and the
//!   rebuild and verify engine behind `commerce projections ...`.
//!
//! The pool, the migrations and the notify channels are the `read-model` crate's.

pub mod app;
pub mod cart;
pub mod cart_bulk;
pub mod catalogue;
pub mod lag;
pub mod mailer;
pub mod notifications;
pub mod orders;
pub mod parked;
pub mod rebuild;
pub mod registry;
pub mod runtime;
pub mod saga;
