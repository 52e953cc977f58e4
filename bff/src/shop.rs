//! The GraphQL API of accounts, the catalogue, checkout and orders: authentication
//! (`register`, `login`, `refreshToken`, `logout`), `me` and profile changes, password reset
//! and email verification by mailed tokens (`requestPasswordReset`, `resetPassword`,
//! `requestEmailVerification`, `verifyEmail`), product admin
//! mutations, `checkout`, `cancelOrder`, `order`, `myOrders`, and the back office's
//! `shipOrder`, `markDelivered` and `refundPayment`. Every resolver checks the caller first.

use crate::error::{gql, BffError};
use crate::schema::{backends, caller, check_key, grpc};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use domain::values::{CartId, Currency, OrderId, PaymentToken, ProductId};
use proto::commands::commands_client::CommandsClient;
use proto::commands::{ExecuteRequest, Meta};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user_id: ID,
    pub role: String,
    /// The customer's cart after an anonymous cart was adopted or merged at log-in.
    pub cart_id: Option<ID>,
}

impl From<proto::user::Tokens> for AuthPayload {
    fn from(t: proto::user::Tokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in as i64,
            user_id: ID(t.user_id),
            role: t.role,
            cart_id: None,
        }
    }
}

/// What a mutation of one aggregate returns: its id and its stream version afterwards.
#[derive(SimpleObject)]
pub struct MutationResult {
    pub id: ID,
    pub version: i64,
}

#[derive(SimpleObject, InputObject, Deserialize, serde::Serialize, Clone)]
#[graphql(input_name = "AddressInput")]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    #[graphql(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(SimpleObject)]
pub struct Me {
    pub id: ID,
    pub email: String,
    pub name: String,
    pub role: String,
    pub addresses: Vec<Address>,
    pub version: i64,
    /// Whether the email was verified (`requestEmailVerification`, then `verifyEmail`).
    pub email_verified: bool,
}

#[derive(SimpleObject, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MoneyView {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(SimpleObject, InputObject, Deserialize, serde::Serialize, Clone)]
#[graphql(input_name = "AttributeInput")]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

#[derive(SimpleObject, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

#[derive(SimpleObject, Deserialize)]
pub struct Payment {
    pub id: String,
    /// AUTHORIZED, DECLINED, CAPTURED, VOIDED or REFUNDED (captured, then refunded in full).
    pub status: String,
    pub amount: MoneyView,
    pub refunded_minor: i64,
    pub card_brand: String,
    pub card_last4: String,
    pub decline_reason: Option<String>,
    pub captures: i64,
}

#[derive(SimpleObject, Deserialize)]
#[graphql(complex)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    /// PLACED, STOCK_RESERVED, PAYMENT_AUTHORIZED, CONFIRMED, SHIPPED, DELIVERED or CANCELLED.
    pub status: String,
    pub total: MoneyView,
    pub refunded_minor: i64,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: i64,
    pub placed_at: String,
    pub lines: Vec<OrderLine>,
}

#[async_graphql::ComplexObject]
impl Order {
    /// The order's payment, if one was attempted.
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<Payment>> {
        gql(async move {
            let docs = backends(ctx)
                .shop
                .clone()
                .get_payments_of_order(grpc(
                    ctx,
                    proto::queries::ById {
                        id: self.id.clone(),
                        at_least_version: 0,
                    },
                ))
                .await?
                .into_inner();
            match docs.json.first() {
                None => Ok(None),
                Some(j) => {
                    let mut p: Payment = parse_doc(j)?;
                    p.status = p.status.to_uppercase();
                    Ok(Some(p))
                }
            }
        }
        .await)
    }

    /// Every payment attempted for the order, newest first.
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<Payment>> {
        gql(async move {
            let docs = backends(ctx)
                .shop
                .clone()
                .get_payments_of_order(grpc(
                    ctx,
                    proto::queries::ById {
                        id: self.id.clone(),
                        at_least_version: 0,
                    },
                ))
                .await?
                .into_inner();
            docs.json
                .iter()
                .map(|j| {
                    let mut p: Payment = parse_doc(j)?;
                    p.status = p.status.to_uppercase();
                    Ok(p)
                })
                .collect()
        }
        .await)
    }

    /// The order's events, oldest first, each as a readable line.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<crate::orders::TimelineEntry>> {
        gql(crate::orders::timeline(ctx, &self.id).await)
    }
}

pub fn parse_doc<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, BffError> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(error = %e, "read model document does not parse");
        BffError::Internal
    })
}

pub fn order_of(json: &str) -> Result<Order, BffError> {
    let mut o: Order = parse_doc(json)?;
    o.status = o.status.to_uppercase();
    Ok(o)
}

/// An order from the read model, waiting (bounded) for `at_least` when it is above 0.
pub async fn load_order(
    backends: &crate::clients::Backends,
    id: &str,
    at_least: u64,
) -> Result<Order, BffError> {
    let id = OrderId::parse(id)?;
    let doc = backends
        .shop
        .clone()
        .get_order(proto::queries::ById {
            id: id.to_string(),
            at_least_version: at_least,
        })
        .await
        .map_err(|s| BffError::from(s).waited_for(at_least))?
        .into_inner();
    order_of(&doc.json)
}

pub async fn exec(
    ctx: &Context<'_>,
    client: &CommandsClient<crate::clients::AuthedChannel>,
    stream_id: String,
    command: Value,
    idempotency_key: Option<String>,
) -> Result<MutationResult, BffError> {
    check_key(&idempotency_key)?;
    // An invalid token is refused outright; the actor travels in the credential.
    caller(ctx).actor()?;
    let req = grpc(
        ctx,
        ExecuteRequest {
            meta: Some(Meta {
                idempotency_key: idempotency_key.unwrap_or_default(),
            }),
            stream_id,
            command_json: command.to_string(),
        },
    );
    let r = client.clone().execute(req).await?.into_inner();
    Ok(MutationResult {
        id: ID(r.stream_id),
        version: r.version as i64,
    })
}

/// A UUID (v8) derived from a text: the same caller and key always name the same stream.
fn derived_uuid(text: &str) -> uuid::Uuid {
    let digest = platform::auth::sha256_hex(text);
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(digest.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    uuid::Uuid::new_v8(bytes)
}

fn money(amount_minor: i64, currency: &str) -> Result<Value, BffError> {
    let c = Currency::parse(currency)?;
    if amount_minor < 0 {
        return Err(BffError::InvalidArgument(
            "an amount cannot be negative".into(),
        ));
    }
    Ok(json!({ "amount_minor": amount_minor, "currency": c.as_str() }))
}

#[derive(InputObject)]
pub struct ProductInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    #[graphql(default)]
    pub categories: Vec<String>,
    #[graphql(default)]
    pub attributes: Vec<Attribute>,
    pub brand: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    #[graphql(default)]
    pub initial_stock: i32,
}

#[derive(InputObject)]
pub struct ProductDetailsInput {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    #[graphql(default)]
    pub categories: Vec<String>,
    #[graphql(default)]
    pub attributes: Vec<Attribute>,
    pub brand: Option<String>,
}

fn details(
    name: String,
    description: String,
    categories: Vec<String>,
    attributes: Vec<Attribute>,
    brand: Option<String>,
) -> Value {
    let attrs: serde_json::Map<String, Value> = attributes
        .into_iter()
        .map(|a| (a.key, Value::String(a.value)))
        .collect();
    let mut d = json!({ "name": name, "description": description, "categories": categories, "attributes": attrs });
    if let Some(brand) = brand {
        d["brand"] = Value::String(brand);
    }
    d
}

#[derive(SimpleObject)]
pub struct CheckoutResult {
    pub order_id: ID,
    /// The cart's version after checkout.
    pub cart_version: i64,
}

#[derive(Default)]
pub struct ShopQuery;

#[Object]
impl ShopQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        gql(async move {
            let claims = caller(ctx).user()?;
            let u = backends(ctx)
                .users
                .clone()
                .get_user(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?
                .into_inner();
            Ok(Me {
                id: ID(u.user_id),
                email: u.email,
                name: u.name,
                role: u.role,
                addresses: serde_json::from_str(&u.addresses_json).unwrap_or_default(),
                version: u.version as i64,
                email_verified: u.email_verified,
            })
        }
        .await)
    }

    /// An order: its owner or an admin only.
    /// With `atLeastVersion`, waits briefly for the read model to reach it (`STALE` if not).
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least_version: Option<i64>,
    ) -> Result<Order> {
        gql(async move {
            caller(ctx).user()?;
            let at_least = at_least_version.unwrap_or(0).max(0) as u64;
            let order = load_order(backends(ctx), id.as_str(), at_least).await?;
            caller(ctx).check_owner(Some(&order.customer_id))?;
            if (order.version as u64) < at_least {
                return Err(BffError::Stale(format!(
                    "the order is at version {}, not yet {at_least}; retry",
                    order.version
                )));
            }
            Ok(order)
        }
        .await)
    }
}

#[derive(Default)]
pub struct ShopMutation;

#[Object]
impl ShopMutation {
    /// Creates a customer account.
    async fn register(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        name: String,
    ) -> Result<MutationResult> {
        gql(async move {
            crate::throttle::register(ctx)?;
            let r = backends(ctx)
                .users
                .clone()
                .register(grpc(
                    ctx,
                    proto::user::RegisterRequest {
                        email,
                        password,
                        name,
                    },
                ))
                .await?
                .into_inner();
            Ok(MutationResult {
                id: ID(r.user_id),
                version: r.version as i64,
            })
        }
        .await)
    }

    /// Signs in: a short-lived access token (send it as `Authorization: Bearer ...`) and a
    /// refresh token. With `anonymousCartId`, that cart becomes the customer's, or is merged
    /// into their open cart; `cartId` names the result.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        anonymous_cart_id: Option<ID>,
    ) -> Result<AuthPayload> {
        gql(async move {
            let anonymous = anonymous_cart_id.map(|c| CartId::parse(&c)).transpose()?;
            let attempt = crate::throttle::login_attempt(ctx, &email)?;
            let t = backends(ctx)
                .users
                .clone()
                .login(grpc(ctx, proto::user::LoginRequest { email, password }))
                .await;
            crate::throttle::settle(attempt, &t);
            let t = t?.into_inner();
            let user_id = t.user_id.clone();
            // The cart is adopted by the customer who just signed in.
            let me = backends(ctx).acting_for_user(&t.user_id, &t.role);
            let mut payload: AuthPayload = t.into();
            if let Some(cart) = anonymous {
                let target = match me
                    .cart_queries
                    .clone()
                    .get_open_cart(grpc(
                        ctx,
                        proto::cart::GetOpenCartRequest {
                            customer_id: user_id.clone(),
                        },
                    ))
                    .await
                {
                    Ok(c) => c.into_inner().cart_id,
                    Err(s) if s.code() == tonic::Code::NotFound => String::new(),
                    Err(s) => return Err(s.into()),
                };
                let r = me
                    .cart_commands
                    .clone()
                    .adopt_cart(grpc(
                        ctx,
                        proto::cart::AdoptCartRequest {
                            meta: None,
                            cart_id: cart.to_string(),
                            customer_id: user_id,
                            target_cart_id: target,
                        },
                    ))
                    .await?
                    .into_inner();
                payload.cart_id = Some(ID(r.cart_id));
            }
            Ok(payload)
        }
        .await)
    }

    /// Trades a refresh token for new tokens (the old refresh token stops working).
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        gql(async move {
            crate::throttle::refresh(ctx)?;
            let t = backends(ctx)
                .users
                .clone()
                .refresh(grpc(ctx, proto::user::RefreshRequest { refresh_token }))
                .await?
                .into_inner();
            Ok(t.into())
        }
        .await)
    }

    /// Revokes a refresh token.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        gql(async move {
            backends(ctx)
                .users
                .clone()
                .logout(grpc(ctx, proto::user::RefreshRequest { refresh_token }))
                .await?;
            Ok(true)
        }
        .await)
    }

    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] addresses: Vec<Address>,
    ) -> Result<MutationResult> {
        gql(async move {
            let claims = caller(ctx).user()?;
            let r = backends(ctx)
                .users
                .clone()
                .update_profile(grpc(
                    ctx,
                    proto::user::UpdateProfileRequest {
                        user_id: claims.sub.clone(),
                        name,
                        addresses_json: serde_json::to_string(&addresses).unwrap_or_default(),
                    },
                ))
                .await?
                .into_inner();
            Ok(MutationResult {
                id: ID(r.user_id),
                version: r.version as i64,
            })
        }
        .await)
    }

    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .change_password(grpc(
                    ctx,
                    proto::user::ChangePasswordRequest {
                        user_id: claims.sub.clone(),
                        current_password,
                        new_password,
                    },
                ))
                .await?;
            crate::session::forget(ctx, &claims.sub);
            Ok(true)
        }
        .await)
    }

    /// Mails a link to reset the password to `email`, if it has an account. Always `true`,
    /// account or not (nothing tells which); throttled like `login`.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        gql(async move {
            // Counted as a log-in attempt that failed: the same buckets, the same backoff.
            if let Some(attempt) = crate::throttle::login_attempt(ctx, &email)? {
                attempt.failed();
            }
            backends(ctx)
                .users
                .clone()
                .request_password_reset(grpc(ctx, proto::user::PasswordResetRequest { email }))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Sets a new password with the token of a reset mail; every session of the account
    /// ends. `INVALID_ARGUMENT` for an unknown, used, superseded or expired token.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> Result<bool> {
        gql(async move {
            crate::throttle::refresh(ctx)?;
            let r = backends(ctx)
                .users
                .clone()
                .reset_password(grpc(
                    ctx,
                    proto::user::ResetPasswordRequest {
                        token,
                        new_password,
                    },
                ))
                .await?
                .into_inner();
            crate::session::forget(ctx, &r.user_id);
            Ok(true)
        }
        .await)
    }

    /// Mails the signed-in user a link to verify their email (`FAILED_PRECONDITION` when it
    /// is verified already).
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .request_email_verification(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Verifies the email with the token of a verification mail (no sign-in needed).
    /// `INVALID_ARGUMENT` for an unknown, used, superseded or expired token.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        gql(async move {
            crate::throttle::refresh(ctx)?;
            backends(ctx)
                .users
                .clone()
                .verify_email(grpc(ctx, proto::user::TokenRequest { token }))
                .await?;
            Ok(true)
        }
        .await)
    }

    /// Deletes the signed-in account; its carts go too.
    async fn delete_account(&self, ctx: &Context<'_>) -> Result<bool> {
        gql(async move {
            let claims = caller(ctx).user()?;
            backends(ctx)
                .users
                .clone()
                .delete_account(grpc(
                    ctx,
                    proto::user::UserRef {
                        user_id: claims.sub.clone(),
                    },
                ))
                .await?;
            crate::session::forget(ctx, &claims.sub);
            Ok(true)
        }
        .await)
    }

    /// Admin: adds a product to the catalogue.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: ProductInput,
        idempotency_key: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            if input.initial_stock < 0 {
                return Err(BffError::InvalidArgument("initial stock cannot be negative".into()));
            }
            // A retried creation (same key, same admin) names the same product, so the key,
            // which is scoped by stream and caller, finds the first result.
            let id = match &idempotency_key {
                Some(k) => ProductId::from(derived_uuid(&format!("product:{}:{k}", caller(ctx).user()?.sub))),
                None => ProductId::generate(),
            };
            let cmd = json!({
                "type": "create",
                "product_id": id,
                "details": details(input.name, input.description, input.categories, input.attributes, input.brand),
                "price": money(input.price_minor, &input.currency)?,
                "initial_stock": input.initial_stock,
            });
            exec(ctx, &backends(ctx).products, id.to_string(), cmd, idempotency_key).await
        }
        .await)
    }

    /// Admin: changes a product's name, description, categories and attributes.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ProductDetailsInput,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = ProductId::parse(&id)?;
            let cmd = json!({ "type": "update", "details": details(input.name, input.description, input.categories, input.attributes, input.brand) });
            exec(ctx, &backends(ctx).products, id.to_string(), cmd, None).await
        }
        .await)
    }

    /// Admin: changes a product's price (same currency).
    async fn change_product_price(
        &self,
        ctx: &Context<'_>,
        id: ID,
        price_minor: i64,
        currency: String,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = ProductId::parse(&id)?;
            let cmd = json!({ "type": "change_price", "price": money(price_minor, &currency)? });
            exec(ctx, &backends(ctx).products, id.to_string(), cmd, None).await
        }
        .await)
    }

    /// Admin: takes a product off sale.
    async fn archive_product(&self, ctx: &Context<'_>, id: ID) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = ProductId::parse(&id)?;
            exec(
                ctx,
                &backends(ctx).products,
                id.to_string(),
                json!({ "type": "archive" }),
                None,
            )
            .await
        }
        .await)
    }

    /// Admin: puts an archived product back on sale.
    async fn unarchive_product(&self, ctx: &Context<'_>, id: ID) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = ProductId::parse(&id)?;
            exec(
                ctx,
                &backends(ctx).products,
                id.to_string(),
                json!({ "type": "unarchive" }),
                None,
            )
            .await
        }
        .await)
    }

    /// Admin: receives (positive) or writes off (negative) stock.
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        delta: i64,
        reason: String,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = ProductId::parse(&id)?;
            let cmd = json!({ "type": "adjust_stock", "delta": delta, "reason": reason });
            exec(ctx, &backends(ctx).products, id.to_string(), cmd, None).await
        }
        .await)
    }

    /// Checks out the signed-in customer's cart with a payment token from the payment
    /// gateway's tokenization endpoint (`POST /pay/v1/tokens`, outside this API: card numbers
    /// never pass through here); prices are snapshotted from the catalogue, and the checkout
    /// saga takes it from there. Follow the order with `order(id)`.
    async fn checkout(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        payment_token: String,
        idempotency_key: Option<String>,
    ) -> Result<CheckoutResult> {
        gql(async move {
            let claims = caller(ctx).user()?.clone();
            check_key(&idempotency_key)?;
            let cart_id = CartId::parse(&cart_id)?;
            let token = PaymentToken::parse(&payment_token)?;
            let card = backends(ctx)
                .payment_methods
                .clone()
                .describe(grpc(
                    ctx,
                    proto::payment::CardToken {
                        token: token.as_str().to_owned(),
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            // A retried checkout (same key) names the same order.
            let order_id = match &idempotency_key {
                Some(k) => OrderId::from(derived_uuid(&format!("{}:{k}", claims.sub))),
                None => OrderId::generate(),
            };
            let r = backends(ctx)
                .cart_commands
                .clone()
                .check_out(grpc(
                    ctx,
                    proto::cart::CheckOutRequest {
                        meta: Some(proto::cart::CommandMeta {
                            idempotency_key: idempotency_key.unwrap_or_default(),
                        }),
                        cart_id: cart_id.to_string(),
                        order_id: order_id.to_string(),
                        prices: Default::default(),
                        payment_token: card.token,
                        card_brand: card.brand,
                        card_last4: card.last4,
                    },
                ))
                .await?
                .into_inner();
            Ok(CheckoutResult {
                order_id: ID(order_id.to_string()),
                cart_version: r.version as i64,
            })
        }
        .await)
    }

    /// Cancels one of the signed-in customer's orders before it ships.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        reason: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).user()?;
            let order = load_order(backends(ctx), order_id.as_str(), 0).await?;
            caller(ctx).check_owner(Some(&order.customer_id))?;
            let cmd = json!({ "type": "cancel", "reason": reason.unwrap_or_else(|| "cancelled by the customer".into()), "by": "customer" });
            exec(ctx, &backends(ctx).orders, order.id, cmd, None).await
        }
        .await)
    }

    /// Admin: ships a confirmed order.
    async fn ship_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        carrier: String,
        tracking_number: String,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = OrderId::parse(&order_id)?;
            let cmd =
                json!({ "type": "ship", "carrier": carrier, "tracking_number": tracking_number });
            exec(ctx, &backends(ctx).orders, id.to_string(), cmd, None).await
        }
        .await)
    }

    /// Admin: marks a shipped order delivered.
    async fn mark_delivered(&self, ctx: &Context<'_>, order_id: ID) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = OrderId::parse(&order_id)?;
            exec(
                ctx,
                &backends(ctx).orders,
                id.to_string(),
                json!({ "type": "mark_delivered" }),
                None,
            )
            .await
        }
        .await)
    }

    /// Admin: refunds part or all of a paid order; the saga refunds the payment.
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        amount_minor: i64,
        idempotency_key: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let order = load_order(backends(ctx), order_id.as_str(), 0).await?;
            let cmd =
                json!({ "type": "refund", "amount": money(amount_minor, &order.total.currency)? });
            exec(ctx, &backends(ctx).orders, order.id, cmd, idempotency_key).await
        }
        .await)
    }
}
