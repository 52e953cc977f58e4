//! Service-to-service trust, tried as a process on the network would: straight to every
//! command and query service's gRPC port, without the BFF. A call without an internal
//! credential, or with a forged one, is UNAUTHENTICATED; a customer's credential acting on
//! another customer's things, on admin commands or on saga-only commands is
//! PERMISSION_DENIED; checkout prices cannot come from the caller; health and reflection
//! (v1 and v1alpha, what `grpcurl list` speaks) answer without a credential and list exactly
//! what each port serves.

use crate::common::*;
use domain::values::UserId;
use e2e_tests::{credential, internal_auth};
use platform::internal_auth::{Actor, InternalAuth, CHECKOUT_SAGA};
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::cart_queries_client::CartQueriesClient;
use proto::commands::commands_client::CommandsClient;
use proto::payment::payment_methods_client::PaymentMethodsClient;
use proto::queries::queries_client::QueriesClient;
use proto::user::users_client::UsersClient;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

fn url(var: &str, port: u16) -> String {
    env(var, &format!("http://127.0.0.1:{}", port + 10000))
}

fn cart_command_url() -> String {
    url("CART_COMMAND_URL", 50051)
}
fn order_command_url() -> String {
    url("ORDER_COMMAND_URL", 50052)
}
fn product_command_url() -> String {
    url("PRODUCT_COMMAND_URL", 50053)
}
fn payment_command_url() -> String {
    url("PAYMENT_COMMAND_URL", 50054)
}
fn user_command_url() -> String {
    url("USER_COMMAND_URL", 50055)
}
fn cart_query_url() -> String {
    url("CART_QUERY_URL", 50061)
}
fn shop_query_url() -> String {
    url("SHOP_QUERY_URL", 50062)
}

async fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// An `authorization` header of the caller's choosing (or none).
#[derive(Clone)]
struct Raw(Option<String>);

impl tonic::service::Interceptor for Raw {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.0 {
            r.metadata_mut().insert("authorization", h.parse().unwrap());
        }
        Ok(r)
    }
}

type Ch = InterceptedService<Channel, Raw>;

/// A channel to `url` whose calls carry `header` as their `authorization`.
async fn raw(url: &str, header: Option<String>) -> Ch {
    InterceptedService::new(channel(url).await, Raw(header))
}

/// A channel to `url` acting as `actor` with the stack's secret.
async fn as_actor(url: &str, actor: &Actor) -> Ch {
    let token = internal_auth().unwrap().mint(actor).unwrap();
    raw(url, Some(format!("Bearer {token}"))).await
}

/// The code a call answered with (`Ok` when it succeeded).
fn code<T>(r: Result<tonic::Response<T>, Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn customer(id: &str) -> Actor {
    Actor::Customer(UserId::parse(id).unwrap())
}

fn exec(stream_id: &str, command: serde_json::Value) -> proto::commands::ExecuteRequest {
    proto::commands::ExecuteRequest {
        meta: None,
        stream_id: stream_id.to_owned(),
        command_json: command.to_string(),
    }
}

fn by_id(id: &str) -> proto::queries::ById {
    proto::queries::ById {
        id: id.to_owned(),
        at_least_version: 0,
    }
}

/// One call per service of every port, made with `header`: the codes they answered.
async fn codes_with(header: Option<String>) -> Vec<(&'static str, Code)> {
    let id = new_id();
    let mut out = Vec::new();
    let c = raw(&cart_command_url(), header.clone()).await;
    out.push((
        "cart CreateCart",
        code(
            CartCommandsClient::new(c)
                .create_cart(proto::cart::CreateCartRequest::default())
                .await,
        ),
    ));
    let c = raw(&order_command_url(), header.clone()).await;
    out.push((
        "order Execute",
        code(
            CommandsClient::new(c)
                .execute(exec(&id, json!({"type": "mark_delivered"})))
                .await,
        ),
    ));
    let c = raw(&product_command_url(), header.clone()).await;
    out.push((
        "product Execute",
        code(
            CommandsClient::new(c)
                .execute(exec(&id, json!({"type": "archive"})))
                .await,
        ),
    ));
    let c = raw(&payment_command_url(), header.clone()).await;
    out.push((
        "payment Execute",
        code(
            CommandsClient::new(c.clone())
                .execute(exec(&id, json!({"type": "capture"})))
                .await,
        ),
    ));
    out.push((
        "payment Describe",
        code(
            PaymentMethodsClient::new(c)
                .describe(proto::payment::CardToken {
                    token: "pm_unknown".into(),
                    ..Default::default()
                })
                .await,
        ),
    ));
    let c = raw(&user_command_url(), header.clone()).await;
    out.push((
        "user GetUser",
        code(
            UsersClient::new(c.clone())
                .get_user(proto::user::UserRef {
                    user_id: id.clone(),
                })
                .await,
        ),
    ));
    out.push((
        "user Login",
        code(
            UsersClient::new(c)
                .login(proto::user::LoginRequest {
                    email: env("ADMIN_EMAIL", "admin@example.com"),
                    password: env("ADMIN_PASSWORD", ""),
                })
                .await,
        ),
    ));
    let c = raw(&cart_query_url(), header.clone()).await;
    out.push((
        "cart GetCart",
        code(
            CartQueriesClient::new(c)
                .get_cart(proto::cart::GetCartRequest {
                    cart_id: id.clone(),
                    at_least_version: 0,
                })
                .await,
        ),
    ));
    let c = raw(&shop_query_url(), header).await;
    out.push((
        "shop GetProducts",
        code(
            QueriesClient::new(c)
                .get_products(proto::queries::ByIds { ids: vec![] })
                .await,
        ),
    ));
    out
}

fn assert_all(codes: &[(&str, Code)], expected: Code, what: &str) {
    for (call, c) in codes {
        assert_eq!(*c, expected, "{call} with {what}");
    }
    assert_eq!(codes.len(), 9, "every port was tried");
}

#[tokio::test]
async fn every_port_refuses_calls_without_a_credential_or_with_a_forged_one() {
    assert_all(
        &codes_with(None).await,
        Code::Unauthenticated,
        "no credential",
    );
    assert_all(
        &codes_with(Some("Bearer garbage".into())).await,
        Code::Unauthenticated,
        "a garbage credential",
    );
    assert_all(
        &codes_with(Some("Basic YWRtaW46YWRtaW4=".into())).await,
        Code::Unauthenticated,
        "another scheme",
    );
    // Signed with a secret of the attacker's: an admin credential in every other respect.
    let forged = InternalAuth::new(&"attacker-".repeat(8))
        .unwrap()
        .mint(&Actor::Admin(UserId::generate()))
        .unwrap();
    assert_all(
        &codes_with(Some(format!("Bearer {forged}"))).await,
        Code::Unauthenticated,
        "a credential signed with another secret",
    );
    // The admin's own access token (the user-facing JWT) is no internal credential.
    let client = http();
    let admin = admin_token(&client).await;
    assert_all(
        &codes_with(Some(format!("Bearer {admin}"))).await,
        Code::Unauthenticated,
        "the admin's access token",
    );
    // A genuine credential passes the gate (the refusal, if any, is the command's own).
    let anonymous = internal_auth().unwrap().mint(&Actor::Anonymous).unwrap();
    let codes = codes_with(Some(format!("Bearer {anonymous}"))).await;
    assert!(
        codes.iter().all(|(_, c)| *c != Code::Unauthenticated),
        "{codes:?}"
    );
    assert!(codes.contains(&("cart CreateCart", Code::Ok)), "{codes:?}");
}

#[tokio::test]
async fn a_customer_cannot_act_for_another_or_run_admin_and_saga_commands() {
    let client = http();
    let admin = admin_token(&client).await;
    let (alice_id, _, alice_token) = new_customer(&client).await;
    let (bob_id, _, _) = new_customer(&client).await;
    let alice = customer(&alice_id);
    let bob = customer(&bob_id);
    let admin_actor = Actor::Admin(UserId::generate());
    let product = new_product(&client, &admin, 1250, 10).await;
    let order = buy(&client, &alice_token, &product, 1, GOOD_CARD).await;
    order_in(&client, &alice_token, &order, &["CONFIRMED"], None).await;
    let denied = Code::PermissionDenied;

    // Cart commands: Alice's cart, Bob's credential.
    let mut alice_carts = CartCommandsClient::new(as_actor(&cart_command_url(), &alice).await);
    let mut bob_carts = CartCommandsClient::new(as_actor(&cart_command_url(), &bob).await);
    let cart = alice_carts
        .create_cart(proto::cart::CreateCartRequest {
            customer_id: alice_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cart_id;
    let add = proto::cart::AddItemRequest {
        meta: None,
        cart_id: cart.clone(),
        product_id: product.clone(),
        quantity: 1,
    };
    alice_carts.add_item(add.clone()).await.unwrap();
    assert_eq!(code(bob_carts.add_item(add).await), denied, "AddItem");
    assert_eq!(
        code(
            bob_carts
                .create_cart(proto::cart::CreateCartRequest {
                    customer_id: alice_id.clone(),
                    ..Default::default()
                })
                .await
        ),
        denied,
        "CreateCart for another customer"
    );
    let clear = proto::cart::ClearCartRequest {
        meta: None,
        cart_id: cart.clone(),
    };
    assert_eq!(code(bob_carts.clear_cart(clear.clone()).await), denied);
    assert_eq!(code(bob_carts.delete_cart(clear).await), denied);
    assert_eq!(
        code(
            bob_carts
                .get_cart_at(proto::cart::GetCartAtRequest {
                    cart_id: cart.clone(),
                    version: 1,
                    at: String::new(),
                })
                .await
        ),
        denied,
        "GetCartAt"
    );
    assert_eq!(
        code(
            bob_carts
                .adopt_cart(proto::cart::AdoptCartRequest {
                    meta: None,
                    cart_id: cart.clone(),
                    customer_id: alice_id.clone(),
                    target_cart_id: String::new(),
                })
                .await
        ),
        denied,
        "AdoptCart as another customer"
    );
    // Saga-only, whoever else asks: Alice, or an admin.
    for actor in [&alice, &admin_actor] {
        let mut c = CartCommandsClient::new(as_actor(&cart_command_url(), actor).await);
        let r = c
            .reopen_checkout(proto::cart::ReopenCheckoutRequest {
                meta: None,
                cart_id: cart.clone(),
                order_id: order.clone(),
                reason: "forged".into(),
            })
            .await;
        assert_eq!(code(r), denied, "ReopenCheckout as {actor}");
    }

    // Cart queries.
    let mut alice_cart_q = CartQueriesClient::new(as_actor(&cart_query_url(), &alice).await);
    let mut bob_cart_q = CartQueriesClient::new(as_actor(&cart_query_url(), &bob).await);
    let get = proto::cart::GetCartRequest {
        cart_id: cart.clone(),
        at_least_version: 2,
    };
    poll("Alice's cart projected", Duration::from_secs(30), || {
        let mut q = alice_cart_q.clone();
        let get = get.clone();
        async move {
            q.get_cart(get)
                .await
                .ok()
                .filter(|c| c.get_ref().version >= 2)
        }
    })
    .await;
    assert_eq!(code(bob_cart_q.get_cart(get).await), denied, "GetCart");
    let open = proto::cart::GetOpenCartRequest {
        customer_id: alice_id.clone(),
    };
    alice_cart_q.get_open_cart(open.clone()).await.unwrap();
    assert_eq!(code(bob_cart_q.get_open_cart(open).await), denied);

    // Orders: admin-only, saga-only, and the owner's cancel.
    let mut bob_orders = CommandsClient::new(as_actor(&order_command_url(), &bob).await);
    let mut admin_orders = CommandsClient::new(as_actor(&order_command_url(), &admin_actor).await);
    for cmd in [
        json!({"type": "ship", "carrier": "DHL", "tracking_number": "JD0001"}),
        json!({"type": "mark_delivered"}),
        json!({"type": "refund", "amount": {"amount_minor": 1250, "currency": "EUR"}}),
        json!({"type": "confirm"}),
        json!({"type": "time_out"}),
        json!({"type": "cancel", "reason": "forged", "by": "system"}),
        json!({"type": "cancel", "reason": "not mine", "by": "customer"}),
    ] {
        assert_eq!(
            code(bob_orders.execute(exec(&order, cmd.clone())).await),
            denied,
            "order {cmd} as another customer"
        );
    }
    for cmd in [
        json!({"type": "confirm"}),
        json!({"type": "mark_stock_reserved"}),
        json!({"type": "cancel", "reason": "forged", "by": "system"}),
    ] {
        assert_eq!(
            code(admin_orders.execute(exec(&order, cmd.clone())).await),
            denied,
            "saga-only {cmd} as an admin"
        );
    }
    assert_eq!(
        code(
            bob_orders
                .state_at(proto::commands::StateAtRequest {
                    stream_id: order.clone(),
                    version: 1,
                    at: String::new(),
                })
                .await
        ),
        denied,
        "order StateAt"
    );

    // Products: admin commands and the saga's reservations.
    let mut alice_products = CommandsClient::new(as_actor(&product_command_url(), &alice).await);
    let mut admin_products =
        CommandsClient::new(as_actor(&product_command_url(), &admin_actor).await);
    for cmd in [
        json!({"type": "archive"}),
        json!({"type": "change_price", "price": {"amount_minor": 1, "currency": "EUR"}}),
        json!({"type": "adjust_stock", "delta": 1000}),
        json!({"type": "reserve_stock", "order_id": new_id(), "quantity": 1}),
        json!({"type": "release_reservation", "order_id": order}),
    ] {
        assert_eq!(
            code(alice_products.execute(exec(&product, cmd.clone())).await),
            denied,
            "product {cmd} as a customer"
        );
    }
    assert_eq!(
        code(
            admin_products
                .execute(exec(
                    &product,
                    json!({"type": "release_reservation", "order_id": order})
                ))
                .await
        ),
        denied,
        "release_reservation as an admin"
    );

    // Payments: the saga's alone.
    let mut alice_payments = CommandsClient::new(as_actor(&payment_command_url(), &alice).await);
    let mut admin_payments =
        CommandsClient::new(as_actor(&payment_command_url(), &admin_actor).await);
    let payment = new_id();
    for cmd in [
        json!({"type": "capture"}),
        json!({"type": "void"}),
        json!({"type": "refund", "amount": {"amount_minor": 1250, "currency": "EUR"}}),
    ] {
        assert_eq!(
            code(alice_payments.execute(exec(&payment, cmd.clone())).await),
            denied,
            "payment {cmd} as a customer"
        );
        assert_eq!(
            code(admin_payments.execute(exec(&payment, cmd.clone())).await),
            denied,
            "payment {cmd} as an admin"
        );
    }

    // Users: another customer's profile, password and account; anonymous too.
    let mut bob_users = UsersClient::new(as_actor(&user_command_url(), &bob).await);
    let mut anonymous_users =
        UsersClient::new(as_actor(&user_command_url(), &Actor::Anonymous).await);
    let alice_ref = proto::user::UserRef {
        user_id: alice_id.clone(),
    };
    assert_eq!(code(bob_users.get_user(alice_ref.clone()).await), denied);
    assert_eq!(
        code(anonymous_users.get_user(alice_ref.clone()).await),
        denied
    );
    assert_eq!(
        code(
            bob_users
                .update_profile(proto::user::UpdateProfileRequest {
                    user_id: alice_id.clone(),
                    name: "Mallory".into(),
                    addresses_json: String::new(),
                })
                .await
        ),
        denied,
        "UpdateProfile"
    );
    assert_eq!(
        code(
            bob_users
                .change_password(proto::user::ChangePasswordRequest {
                    user_id: alice_id.clone(),
                    current_password: "s3cret-pass".into(),
                    new_password: "taken-over-1".into(),
                })
                .await
        ),
        denied,
        "ChangePassword"
    );
    assert_eq!(
        code(bob_users.delete_account(alice_ref.clone()).await),
        denied
    );
    let mut alice_users = UsersClient::new(as_actor(&user_command_url(), &alice).await);
    let me = alice_users.get_user(alice_ref).await.unwrap().into_inner();
    assert_eq!(me.name, "Test Customer", "Alice's account is untouched");

    // Shop queries: Alice's order and what hangs off it; the back office's lists.
    let mut alice_shop = QueriesClient::new(as_actor(&shop_query_url(), &alice).await);
    let mut bob_shop = QueriesClient::new(as_actor(&shop_query_url(), &bob).await);
    alice_shop.get_order(by_id(&order)).await.unwrap();
    assert_eq!(
        code(bob_shop.get_order(by_id(&order)).await),
        denied,
        "GetOrder"
    );
    assert_eq!(
        code(bob_shop.get_order_timeline(by_id(&order)).await),
        denied
    );
    assert_eq!(
        code(bob_shop.get_payments_of_order(by_id(&order)).await),
        denied
    );
    let list = |customer_id: &str| proto::queries::ListOrdersRequest {
        customer_id: customer_id.to_owned(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(code(bob_shop.list_orders(list(&alice_id)).await), denied);
    assert_eq!(
        code(bob_shop.list_orders(list("")).await),
        denied,
        "every order"
    );
    let mine = bob_shop
        .list_orders(list(&bob_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.total_count, 0);
    let notifications = |order_id: &str, customer_id: &str| proto::queries::NotificationsRequest {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
        limit: 10,
    };
    assert_eq!(
        code(bob_shop.list_notifications(notifications(&order, "")).await),
        denied
    );
    assert_eq!(
        code(
            bob_shop
                .list_notifications(notifications("", &alice_id))
                .await
        ),
        denied
    );
    assert_eq!(
        code(bob_shop.list_notifications(notifications("", "")).await),
        denied
    );
    assert_eq!(
        code(
            bob_shop
                .search_products(proto::queries::SearchProductsRequest {
                    include_archived: true,
                    first: 5,
                    ..Default::default()
                })
                .await
        ),
        denied,
        "archived products"
    );
}

#[tokio::test]
async fn checkout_prices_come_from_the_catalogue_not_the_caller() {
    let client = http();
    let admin = admin_token(&client).await;
    let (alice_id, _, alice_token) = new_customer(&client).await;
    let product = new_product(&client, &admin, 4999, 10).await;
    let cart = customer_cart(&client, &alice_token, &product, 2).await;
    let alice = customer(&alice_id);
    let token = card_token(&client, GOOD_CARD).await;
    let card = PaymentMethodsClient::new(as_actor(&payment_command_url(), &alice).await)
        .describe(proto::payment::CardToken {
            token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut carts = CartCommandsClient::new(as_actor(&cart_command_url(), &alice).await);
    let order = new_id();
    let mut request = proto::cart::CheckOutRequest {
        meta: None,
        cart_id: cart.clone(),
        order_id: order.clone(),
        payment_token: card.token,
        card_brand: card.brand,
        card_last4: card.last4,
        ..Default::default()
    };
    // A price of one cent: refused, and the cart stays open.
    request.prices.insert(
        product.clone(),
        proto::cart::Price {
            amount_minor: 1,
            currency: "EUR".into(),
        },
    );
    assert_eq!(
        code(carts.check_out(request.clone()).await),
        Code::InvalidArgument
    );
    // As the event store has it now (time travel to the present).
    let now = carts
        .get_cart_at(proto::cart::GetCartAtRequest {
            cart_id: cart.clone(),
            version: 0,
            at: chrono::Utc::now().to_rfc3339(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status, "open", "{now:?}");
    assert_eq!(now.lines.len(), 1, "{now:?}");
    // Without: the catalogue's price, twice.
    request.prices.clear();
    carts.check_out(request).await.unwrap();
    let o = order_in(
        &client,
        &alice_token,
        &order,
        &["CONFIRMED"],
        Some("CAPTURED"),
    )
    .await;
    assert_eq!(o["total"]["amountMinor"], 9998, "{o}");
}

/// The services `grpcurl list` sees on a port, asked over reflection v1alpha (what grpcurl
/// 1.8 speaks) or v1, without a credential.
async fn listed(url: &str, v1alpha: bool) -> BTreeSet<String> {
    let ch = channel(url).await;
    if v1alpha {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(ch)
            .server_reflection_info(futures::stream::iter([req]))
            .await
            .unwrap_or_else(|s| panic!("{url} v1alpha: {s}"))
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("{url}: {other:?}"),
        }
    } else {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(ch)
            .server_reflection_info(futures::stream::iter([req]))
            .await
            .unwrap_or_else(|s| panic!("{url} v1: {s}"))
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn reflection_lists_exactly_what_each_port_serves_and_health_needs_no_credential() {
    let common = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let ports: [(String, &[&str]); 7] = [
        (cart_command_url(), &["commerce.cart.v1.CartCommands"]),
        (order_command_url(), &["commerce.commands.v1.Commands"]),
        (product_command_url(), &["commerce.commands.v1.Commands"]),
        (
            payment_command_url(),
            &[
                "commerce.commands.v1.Commands",
                "commerce.payment.v1.PaymentMethods",
            ],
        ),
        (user_command_url(), &["commerce.user.v1.Users"]),
        (cart_query_url(), &["commerce.cart.v1.CartQueries"]),
        (shop_query_url(), &["commerce.queries.v1.Queries"]),
    ];
    for (url, served) in &ports {
        let expected: BTreeSet<String> = served
            .iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect();
        assert_eq!(listed(url, true).await, expected, "{url} over v1alpha");
        assert_eq!(listed(url, false).await, expected, "{url} over v1");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel(url).await);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: served[0].to_owned(),
            })
            .await
            .unwrap_or_else(|s| panic!("{url} health: {s}"))
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{url}"
        );
    }
}

/// Only the saga's identity may reopen a checkout; with it the call passes the gate (and is
/// answered on its merits: here, a cart that was never checked out).
#[tokio::test]
async fn the_saga_identity_passes_where_others_are_denied() {
    let saga = Actor::Service(CHECKOUT_SAGA.into());
    let mut c = CartCommandsClient::new(as_actor(&cart_command_url(), &saga).await);
    let cart = c
        .create_cart(proto::cart::CreateCartRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cart_id;
    let r = c
        .reopen_checkout(proto::cart::ReopenCheckoutRequest {
            meta: None,
            cart_id: cart,
            order_id: new_id(),
            reason: "test".into(),
        })
        .await;
    assert!(
        !matches!(&r, Err(s) if matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated)),
        "{r:?}"
    );
    // The credential helper mints what the services accept.
    assert!(credential(saga).is_ok());
}
