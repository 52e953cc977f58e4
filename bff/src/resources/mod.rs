//! The GraphQL API, one module per resource, over the shared [`crate::context`]. Each
//! resource holds its Query, Mutation and Subscription objects; `schema` merges them.
//!
//! Within: `common` (shared types and the typed command sender), `product` and `order`
//! (the types other resources link to), `connection` (Relay pages of either), then the
//! resources: `cart` and `cart_mutation`, `accounts`, `catalogue` and `catalogue_admin`,
//! `checkout`, `orders` and `notifications`, `subscriptions`; `types` holds the enums and
//! times every resource shows in place of the read models' strings.

pub mod accounts;
pub mod cart;
pub mod cart_mutation;
pub mod catalogue;
pub mod catalogue_admin;
pub mod checkout;
pub mod common;
pub mod connection;
pub mod notifications;
pub mod order;
pub mod orders;
pub mod product;
pub mod subscriptions;
pub mod types;
