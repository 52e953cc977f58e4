//! The GraphQL schema: the resources' Query, Mutation and Subscription objects merged into
//! the roots, in the order the published SDL (`bff/schema.graphql`) lists their fields, and
//! the schema built with its limits.

use crate::clients::Backends;
use crate::feed::LiveEvents;
use crate::resources::accounts::{AccountsMutation, AccountsQuery};
use crate::resources::cart::{CartHistory, CartQuery};
use crate::resources::cart_mutation::CartMutation;
use crate::resources::catalogue::{CatalogueQuery, ReviewMutation};
use crate::resources::catalogue_admin::CatalogueAdminMutation;
use crate::resources::checkout::CheckoutMutation;
use crate::resources::notifications::NotificationQuery;
use crate::resources::orders::{OrderListQuery, OrderMutation, OrderQuery};
use crate::resources::product::{new_loader, CatalogueDataLoader};
pub use crate::resources::subscriptions::SubscriptionRoot;
use async_graphql::{MergedObject, Schema};

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    CartQuery,
    CartHistory,
    AccountsQuery,
    OrderQuery,
    CatalogueQuery,
    OrderListQuery,
    NotificationQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    CartMutation,
    AccountsMutation,
    CatalogueAdminMutation,
    CheckoutMutation,
    OrderMutation,
    ReviewMutation,
);

/// The per-request data the resolvers need beyond the request context: the catalogue's
/// DataLoader (its cache must not outlive the request or connection).
pub fn request_loader(backends: &Backends) -> CatalogueDataLoader {
    new_loader(backends.shop.clone())
}

/// Builds the schema with its limits.
pub fn build_schema(backends: Backends, live: LiveEvents) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(backends)
    .data(live)
    .limit_depth(12)
    .limit_complexity(500)
    .finish()
}

/// The same schema with looser depth and complexity limits, for introspection-only
/// documents: the standard introspection query (GraphiQL, codegen, fuzzers) nests `ofType`
/// deeper than any data query may, and runs no resolver of ours. What bounds its answer is
/// checked before (`limits::check_document`: no aliases, schema lists nested at most three
/// deep, 16 KiB at most).
pub fn build_introspection_schema(backends: Backends, live: LiveEvents) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(backends)
    .data(live)
    .limit_depth(24)
    .limit_complexity(2000)
    .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::BackendArgs;

    #[tokio::test]
    async fn depth_and_complexity_limits_refuse_with_their_codes() {
        let args = BackendArgs {
            cart_command_url: "http://127.0.0.1:1".into(),
            cart_query_url: "http://127.0.0.1:1".into(),
            user_command_url: "http://127.0.0.1:1".into(),
            order_command_url: "http://127.0.0.1:1".into(),
            product_command_url: "http://127.0.0.1:1".into(),
            payment_command_url: "http://127.0.0.1:1".into(),
            shop_query_url: "http://127.0.0.1:1".into(),
            backend_timeout_ms: 100,
            internal: platform::internal_auth::InternalAuthArgs {
                internal_secret: Some("test-internal-secret-".repeat(2)),
            },
        };
        let schema = build_schema(Backends::new(&args).unwrap(), LiveEvents::new());
        let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
        let r = schema.execute(deep).await;
        assert_eq!(
            crate::error::engine_error_code(&r.errors[0].message),
            "QUERY_TOO_DEEP",
            "{:?}",
            r.errors
        );
        let wide = format!(
            "{{ {} }}",
            (0..90)
                .map(|i| format!(
                    "a{i}: product(id: \"00000000-0000-0000-0000-000000000000\") {{ id name description archived version createdAt }}"
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let r = schema.execute(wide.as_str()).await;
        assert_eq!(
            crate::error::engine_error_code(&r.errors[0].message),
            "QUERY_TOO_COMPLEX",
            "{:?}",
            r.errors
        );
    }

    /// `bff/schema.graphql` is the published contract: it must match the code. Rewrite it
    /// with `UPDATE_SCHEMA=1 cargo test -p bff`.
    #[tokio::test]
    async fn checked_in_sdl_matches_the_code() {
        let args = BackendArgs {
            cart_command_url: "http://127.0.0.1:1".into(),
            cart_query_url: "http://127.0.0.1:1".into(),
            user_command_url: "http://127.0.0.1:1".into(),
            order_command_url: "http://127.0.0.1:1".into(),
            product_command_url: "http://127.0.0.1:1".into(),
            payment_command_url: "http://127.0.0.1:1".into(),
            shop_query_url: "http://127.0.0.1:1".into(),
            backend_timeout_ms: 100,
            internal: platform::internal_auth::InternalAuthArgs {
                internal_secret: Some("test-internal-secret-".repeat(2)),
            },
        };
        let sdl = build_schema(Backends::new(&args).unwrap(), LiveEvents::new()).sdl();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &sdl).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == sdl,
            "bff/schema.graphql drifted from the code; run UPDATE_SCHEMA=1 cargo test -p bff and commit"
        );
    }
}
