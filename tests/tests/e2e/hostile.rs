//! Hostile input through GraphQL: a bounded property test (proptest's deterministic runner,
//! `HOSTILE_CASES` cases, 120 by default) sends hostile strings (NUL and other controls, RTL
//! marks, emoji, 1 MB, SQL/HTML/JSON metacharacters, lengths at and past each limit) and
//! numbers (0, negative, i64::MAX, u32::MAX, ...) into every free-text and numeric input of the
//! catalogue, profile, stock and cart mutations. The domain's own value types are the oracle:
//! each input is refused with `INVALID_ARGUMENT` (or, for a number outside the GraphQL
//! argument's 32-bit type, the engine's `GRAPHQL_VALIDATION_FAILED`), or accepted and then
//! visible through GraphQL as the type normalised it. Afterwards the projections still
//! advance. Separate tests: mixed currencies and an overflowing total are refused at
//! `checkout` with nothing appended; hostile cancel reasons, shipment and review texts.

use crate::common::*;
use domain::values::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::time::Duration;

const CREATE_PRODUCT: &str =
    "mutation($i: ProductInput!) { createProduct(input: $i) { id version } }";
const PRODUCT: &str = "query($id: ID!) { product(id: $id) { name description categories
    attributes { key value } price { amountMinor currency } stock { onHand } brand { name } } }";
const UPDATE_PROFILE: &str = "mutation($n: String!, $a: [AddressInput!]) {
    updateProfile(name: $n, addresses: $a) { version } }";
const ME: &str = "{ me { name addresses { line1 line2 city postalCode country } } }";
const ADJUST: &str = "mutation($id: ID!, $d: Int!, $r: String!) {
    adjustStock(id: $id, delta: $d, reason: $r) { version } }";
const ADD_KEYED: &str = "mutation($c: ID!, $p: ID!, $q: Int!, $k: String) {
    addItemToCart(cartId: $c, productId: $p, quantity: $q, idempotencyKey: $k) { cartId version } }";
const CHECKOUT: &str = "mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId cartVersion } }";

/// Which input a case aims at.
#[derive(Debug, Clone, Copy)]
enum Field {
    ProductName,
    Description,
    Category,
    AttributeKey,
    AttributeValue,
    Brand,
    PersonName,
    AddressLine,
    City,
    PostalCode,
    Country,
    StockReason,
    IdempotencyKey,
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Quantity,
    Price,
    StockDelta,
    InitialStock,
}

#[derive(Debug, Clone)]
enum Case {
    Text(Field, String),
    Number(Number, i64),
}

fn hostile_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\u{0}".to_owned()),
        Just("\u{7}\u{1b}[31m\u{7f}".to_owned()),
        Just("\u{85}\u{9b}".to_owned()),
        Just("\u{200f}\u{202e}\u{feff}".to_owned()),
        Just("👩\u{200d}💻🏳️\u{200d}🌈".to_owned()),
        Just("'; DROP TABLE products; --".to_owned()),
        Just("<script>alert(1)</script>&amp;".to_owned()),
        Just(r#"{"$where": "1", "a": "\"}"#.to_owned()),
        Just("\r\n\t ".to_owned()),
        Just("Ünïcödé ümlaut".to_owned()),
        "[a-z ]{1,12}",
        "\\PC{0,20}",
        any::<String>(),
    ];
    let at_limits = prop_oneof![
        Just(1usize),
        Just(20),
        Just(21),
        Just(100),
        Just(101),
        Just(128),
        Just(129),
        Just(200),
        Just(201),
        Just(500),
        Just(501),
        Just(10_000),
        Just(10_001),
    ];
    prop_oneof![
        8 => proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat()),
        3 => (at_limits, prop_oneof![Just("x"), Just("é"), Just("💻")]).prop_map(|(n, c)| c.repeat(n)),
        1 => Just("x".repeat(1_000_000)),
    ]
}

fn hostile_number() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(999),
        Just(1000),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(i64::from(u32::MAX)),
        Just(i64::from(i32::MAX)),
        Just(i64::from(i32::MAX) + 1),
        Just(i64::from(i32::MIN)),
        Just(1_000_000_000),
        Just(1_000_000_001),
        -2000i64..2000,
        any::<i64>(),
    ]
}

fn any_case() -> impl Strategy<Value = Case> {
    let field = prop_oneof![
        Just(Field::ProductName),
        Just(Field::Description),
        Just(Field::Category),
        Just(Field::AttributeKey),
        Just(Field::AttributeValue),
        Just(Field::Brand),
        Just(Field::PersonName),
        Just(Field::AddressLine),
        Just(Field::City),
        Just(Field::PostalCode),
        Just(Field::Country),
        Just(Field::StockReason),
        Just(Field::IdempotencyKey),
    ];
    let number = prop_oneof![
        Just(Number::Quantity),
        Just(Number::Price),
        Just(Number::StockDelta),
        Just(Number::InitialStock),
    ];
    prop_oneof![
        3 => (field, hostile_string()).prop_map(|(f, s)| Case::Text(f, s)),
        1 => (number, hostile_number()).prop_map(|(n, v)| Case::Number(n, v)),
    ]
}

/// What the domain makes of a text, by field: `Some(normalised)` if it is accepted.
fn oracle(field: Field, s: &str) -> Option<String> {
    let ok = |r: Result<String, ValueError>| r.ok();
    match field {
        Field::ProductName => ok(ProductName::parse(s).map(String::from)),
        Field::Description => ok(Description::parse(s).map(String::from)),
        Field::Category => ok(Category::parse(s).map(String::from)),
        Field::AttributeKey => ok(AttributeKey::parse(s).map(String::from)),
        Field::AttributeValue => ok(AttributeValue::parse(s).map(String::from)),
        Field::Brand => ok(BrandName::parse(s).map(String::from)),
        Field::PersonName => ok(PersonName::parse(s).map(String::from)),
        Field::AddressLine => ok(AddressLine::parse(s).map(String::from)),
        Field::City => ok(City::parse(s).map(String::from)),
        Field::PostalCode => ok(PostalCode::parse(s).map(String::from)),
        Field::Country => ok(Country::parse(s).map(String::from)),
        Field::StockReason => ok(StockReason::parse(s).map(String::from)),
        // The BFF's rule for client keys: 1 to 128 bytes, no control characters; kept as is.
        Field::IdempotencyKey => {
            (!s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control))
                .then(|| s.to_owned())
        }
    }
}

fn short(s: &str) -> String {
    let head: String = s.chars().take(60).collect();
    format!("{head:?} ({} bytes)", s.len())
}

struct Fixture {
    client: reqwest::Client,
    admin: String,
    customer: String,
    /// The product whose stock the stock cases move, and its modelled units on hand.
    stock_product: String,
    on_hand: i64,
    /// The profile as the last accepted update left it.
    name: String,
    address: Value,
}

impl Fixture {
    /// Polls a product until `check` holds for it.
    async fn product_shows(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) {
        poll(what, Duration::from_secs(30), || async {
            let body = gql(&self.client, PRODUCT, json!({ "id": id })).await;
            check(&body["data"]["product"]).then_some(())
        })
        .await
    }

    async fn create_product(&self, input: Value) -> Value {
        gql_as(
            &self.client,
            &self.admin,
            CREATE_PRODUCT,
            json!({ "i": input }),
        )
        .await
    }

    async fn run(&mut self, case: &Case) {
        match case {
            Case::Text(field, s) => self.text(*field, s).await,
            Case::Number(number, n) => self.number(*number, *n).await,
        }
    }

    async fn text(&mut self, field: Field, s: &str) {
        let expect = oracle(field, s);
        let what = format!("{field:?} = {}", short(s));
        let base = json!({ "name": "Hostile", "priceMinor": 100, "currency": "EUR" });
        let body = match field {
            Field::ProductName
            | Field::Description
            | Field::Category
            | Field::AttributeKey
            | Field::AttributeValue
            | Field::Brand => {
                let mut input = base;
                match field {
                    Field::ProductName => input["name"] = json!(s),
                    Field::Description => input["description"] = json!(s),
                    Field::Category => input["categories"] = json!([s]),
                    Field::AttributeKey => {
                        input["attributes"] = json!([{ "key": s, "value": "v" }])
                    }
                    Field::AttributeValue => {
                        input["attributes"] = json!([{ "key": "k", "value": s }])
                    }
                    _ => input["brand"] = json!(s),
                }
                self.create_product(input).await
            }
            Field::PersonName => {
                gql_as(
                    &self.client,
                    &self.customer,
                    UPDATE_PROFILE,
                    json!({ "n": s, "a": [self.address] }),
                )
                .await
            }
            Field::AddressLine | Field::City | Field::PostalCode | Field::Country => {
                let mut address = self.address.clone();
                let key = match field {
                    Field::AddressLine => "line1",
                    Field::City => "city",
                    Field::PostalCode => "postalCode",
                    _ => "country",
                };
                address[key] = json!(s);
                gql_as(
                    &self.client,
                    &self.customer,
                    UPDATE_PROFILE,
                    json!({ "n": self.name, "a": [address] }),
                )
                .await
            }
            Field::StockReason => {
                gql_as(
                    &self.client,
                    &self.admin,
                    ADJUST,
                    json!({ "id": self.stock_product, "d": 1, "r": s }),
                )
                .await
            }
            Field::IdempotencyKey => {
                let cart = self.customer_cart().await;
                gql_as(
                    &self.client,
                    &self.customer,
                    ADD_KEYED,
                    json!({ "c": cart, "p": new_id(), "q": 1, "k": s }),
                )
                .await
            }
        };
        let Some(value) = expect else {
            assert_eq!(
                error_code(&body).as_deref(),
                Some("INVALID_ARGUMENT"),
                "{what} must be refused: {body}"
            );
            self.unchanged_after_refusal(field).await;
            return;
        };
        assert!(body["errors"].is_null(), "{what} must be accepted: {body}");
        let data = &body["data"];
        match field {
            Field::ProductName
            | Field::Description
            | Field::Category
            | Field::AttributeKey
            | Field::AttributeValue
            | Field::Brand => {
                let id = data["createProduct"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                self.product_shows(&id, &what, |p| match field {
                    Field::ProductName => p["name"] == json!(value),
                    Field::Description => p["description"] == json!(value),
                    Field::Category => p["categories"] == json!([value]),
                    Field::AttributeKey => {
                        p["attributes"] == json!([{ "key": value, "value": "v" }])
                    }
                    Field::AttributeValue => {
                        p["attributes"] == json!([{ "key": "k", "value": value }])
                    }
                    _ => p["brand"]["name"] == json!(value),
                })
                .await;
            }
            Field::PersonName => {
                self.name = value.clone();
                self.profile_is_model(&what).await;
            }
            Field::AddressLine | Field::City | Field::PostalCode | Field::Country => {
                let key = match field {
                    Field::AddressLine => "line1",
                    Field::City => "city",
                    Field::PostalCode => "postalCode",
                    _ => "country",
                };
                self.address[key] = json!(value);
                self.profile_is_model(&what).await;
            }
            Field::StockReason => {
                self.on_hand += 1;
                self.stock_is_model(&what).await;
            }
            Field::IdempotencyKey => {
                let cart = data["addItemToCart"]["cartId"].as_str().unwrap_or_default();
                let view = cart_as(&self.client, &self.customer, cart, 2).await;
                assert_eq!(view["itemCount"], 1, "{what}: {view}");
            }
        }
    }

    async fn number(&mut self, number: Number, n: i64) {
        let what = format!("{number:?} = {n}");
        match number {
            Number::Quantity => {
                let cart = self.customer_cart().await;
                let body = gql_as(
                    &self.client,
                    &self.customer,
                    ADD_KEYED,
                    json!({ "c": cart, "p": new_id(), "q": n, "k": null }),
                )
                .await;
                match Quantity::new(n) {
                    Ok(q) => {
                        assert!(body["errors"].is_null(), "{what} must be accepted: {body}");
                        let view = cart_as(&self.client, &self.customer, &cart, 2).await;
                        assert_eq!(view["itemCount"], q.get(), "{what}: {view}");
                    }
                    Err(_) => {
                        assert_eq!(
                            error_code(&body).as_deref(),
                            Some("INVALID_ARGUMENT"),
                            "{what}: {body}"
                        );
                        assert_eq!(
                            stored_events(&cart).await.len(),
                            1,
                            "{what}: nothing appended"
                        );
                    }
                }
            }
            Number::Price => {
                let body = self
                    .create_product(json!({ "name": "Priced", "priceMinor": n, "currency": "EUR" }))
                    .await;
                if n < 0 {
                    assert_eq!(
                        error_code(&body).as_deref(),
                        Some("INVALID_ARGUMENT"),
                        "{what}: {body}"
                    );
                } else {
                    assert!(body["errors"].is_null(), "{what} must be accepted: {body}");
                    let id = body["data"]["createProduct"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    self.product_shows(&id, &what, |p| p["price"]["amountMinor"] == json!(n))
                        .await;
                }
            }
            Number::InitialStock => {
                let body = self
                    .create_product(json!({ "name": "Stocked", "priceMinor": 1, "currency": "EUR", "initialStock": n }))
                    .await;
                if i32::try_from(n).is_err() {
                    assert_eq!(
                        error_code(&body).as_deref(),
                        Some("GRAPHQL_VALIDATION_FAILED"),
                        "{what}: not a GraphQL Int: {body}"
                    );
                } else if n < 0 || n > i64::from(domain::product::MAX_STOCK) {
                    assert_eq!(
                        error_code(&body).as_deref(),
                        Some("INVALID_ARGUMENT"),
                        "{what}: {body}"
                    );
                } else {
                    assert!(body["errors"].is_null(), "{what} must be accepted: {body}");
                    let id = body["data"]["createProduct"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    self.product_shows(&id, &what, |p| p["stock"]["onHand"] == json!(n))
                        .await;
                }
            }
            Number::StockDelta => {
                let body = gql_as(
                    &self.client,
                    &self.admin,
                    ADJUST,
                    json!({ "id": self.stock_product, "d": n, "r": "count" }),
                )
                .await;
                match self.on_hand.checked_add(n) {
                    Some(new) if (0..=i64::from(domain::product::MAX_STOCK)).contains(&new) => {
                        assert!(body["errors"].is_null(), "{what} must be accepted: {body}");
                        self.on_hand = new;
                    }
                    Some(new) if new < 0 => assert_eq!(
                        error_code(&body).as_deref(),
                        Some("FAILED_PRECONDITION"),
                        "{what}: below zero: {body}"
                    ),
                    _ => assert_eq!(
                        error_code(&body).as_deref(),
                        Some("INVALID_ARGUMENT"),
                        "{what}: over the maximum: {body}"
                    ),
                }
                self.stock_is_model(&what).await;
            }
        }
    }

    async fn unchanged_after_refusal(&self, field: Field) {
        match field {
            Field::PersonName
            | Field::AddressLine
            | Field::City
            | Field::PostalCode
            | Field::Country => self.profile_is_model("the profile after a refusal").await,
            Field::StockReason => self.stock_is_model("stock after a refusal").await,
            _ => {}
        }
    }

    async fn profile_is_model(&self, what: &str) {
        let body = gql_as(&self.client, &self.customer, ME, json!({})).await;
        assert_eq!(
            body["data"]["me"]["name"],
            json!(self.name),
            "{what}: {body}"
        );
        assert_eq!(
            body["data"]["me"]["addresses"],
            json!([self.address]),
            "{what}: {body}"
        );
    }

    async fn stock_is_model(&self, what: &str) {
        let want = self.on_hand;
        self.product_shows(&self.stock_product.clone(), what, |p| {
            p["stock"]["onHand"] == json!(want)
        })
        .await;
    }

    async fn customer_cart(&self) -> String {
        let body = gql_as(
            &self.client,
            &self.customer,
            "mutation { createCart { cartId } }",
            json!({}),
        )
        .await;
        body["data"]["createCart"]["cartId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The customer's cart once the read model has reached `version`.
async fn cart_as(client: &reqwest::Client, token: &str, cart: &str, version: u64) -> Value {
    poll(
        &format!("cart {cart} at v{version}"),
        Duration::from_secs(30),
        || async {
            let body = gql_as(client, token, CART, json!({ "id": cart })).await;
            let c = body["data"]["cart"].clone();
            (c["version"].as_u64() >= Some(version)).then_some(c)
        },
    )
    .await
}

#[tokio::test]
async fn hostile_inputs_are_refused_or_projected_and_the_projections_go_on() {
    let client = http();
    let admin = admin_token(&client).await;
    let (_, _, customer) = new_customer(&client).await;
    let stock_product = new_product(&client, &admin, 100, 10).await;
    let address = json!({ "line1": "1 Main St", "line2": "", "city": "Springfield", "postalCode": "12345", "country": "US" });
    let body = gql_as(
        &client,
        &customer,
        UPDATE_PROFILE,
        json!({ "n": "Ann", "a": [address] }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let mut f = Fixture {
        client: client.clone(),
        admin: admin.clone(),
        customer: customer.clone(),
        stock_product,
        on_hand: 10,
        name: "Ann".into(),
        address,
    };
    let cases: usize = env("HOSTILE_CASES", "120").parse().unwrap_or(120);
    let mut runner = TestRunner::deterministic();
    let strategy = any_case();
    let started = std::time::Instant::now();
    let mut changed = 0;
    for _ in 0..cases {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let before = (f.name.clone(), f.address.clone(), f.on_hand);
        f.run(&case).await;
        if before != (f.name.clone(), f.address.clone(), f.on_hand) {
            changed += 1;
        }
    }
    eprintln!(
        "{cases} hostile cases in {:?} ({changed} changed the modelled profile or stock)",
        started.elapsed()
    );

    // The projections still advance: a normal product and a normal cart line show up.
    let product = new_product(&client, &admin, 250, 3).await;
    let cart = customer_cart(&client, &customer, &product, 2).await;
    let view = cart_as(&client, &customer, &cart, 2).await;
    assert_eq!(lines_of(&view)[&product], 2);
}

/// A cart holding `products` (each once), checked out: the error code, and whether the store
/// kept the cart as it was (no `CartCheckedOut`, still open).
async fn checkout_of(
    client: &reqwest::Client,
    token: &str,
    products: &[String],
) -> (Option<String>, usize, usize) {
    let body = gql_as(
        client,
        token,
        "mutation { createCart { cartId } }",
        json!({}),
    )
    .await;
    let cart = body["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap()
        .to_owned();
    for p in products {
        let body = gql_as(
            client,
            token,
            ADD_ITEM,
            json!({ "c": cart, "p": p, "q": 2 }),
        )
        .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let before = stored_events(&cart).await.len();
    cart_as(client, token, &cart, before as u64).await;
    let payment = card_token(client, GOOD_CARD).await;
    let body = gql_as(client, token, CHECKOUT, json!({ "c": cart, "t": payment })).await;
    let after = stored_events(&cart).await;
    let view = cart_as(client, token, &cart, before as u64).await;
    assert_eq!(view["status"], "OPEN", "the cart stays open: {view}");
    assert!(
        after
            .iter()
            .all(|d| d.get_str("event_type").ok() != Some("CartCheckedOut")),
        "nothing checked out"
    );
    (error_code(&body), before, after.len())
}

#[tokio::test]
async fn mixed_currencies_and_overflowing_totals_are_refused_at_checkout() {
    let client = http();
    let admin = admin_token(&client).await;
    let (_, _, token) = new_customer(&client).await;
    let eur = new_product(&client, &admin, 100, 10).await;
    let body = gql_as(
        &client,
        &admin,
        CREATE_PRODUCT,
        json!({ "i": { "name": "Dollar mug", "priceMinor": 100, "currency": "USD", "initialStock": 10 } }),
    )
    .await;
    let usd = body["data"]["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    product_stock(&client, &usd).await;
    let huge = new_product(&client, &admin, i64::MAX, 10).await;

    let (code, before, after) = checkout_of(&client, &token, &[eur.clone(), usd]).await;
    assert_eq!(
        code.as_deref(),
        Some("INVALID_ARGUMENT"),
        "mixed currencies"
    );
    assert_eq!(before, after, "nothing appended");

    // 2 x i64::MAX overflows the line.
    let (code, before, after) = checkout_of(&client, &token, std::slice::from_ref(&huge)).await;
    assert_eq!(
        code.as_deref(),
        Some("INVALID_ARGUMENT"),
        "an overflowing line"
    );
    assert_eq!(before, after, "nothing appended");

    // One currency and a total that fits still checks out.
    let order = buy(&client, &token, &eur, 2, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
}

#[tokio::test]
async fn hostile_cancel_reasons_shipments_and_reviews() {
    let client = http();
    let admin = admin_token(&client).await;
    let (_, _, token) = new_customer(&client).await;
    let product = new_product(&client, &admin, 500, 100).await;

    // Cancel reasons: refused ones leave the order as it is; an accepted one is shown.
    let order = buy(&client, &token, &product, 1, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], None).await;
    let cancel =
        "mutation($o: ID!, $r: String) { cancelOrder(orderId: $o, reason: $r) { version } }";
    for bad in [
        "nul\u{0}",
        "esc\u{1b}[2J",
        &"r".repeat(501),
        &"x".repeat(1_000_000),
    ] {
        let body = gql_as(&client, &token, cancel, json!({ "o": order, "r": bad })).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{}: {body}",
            short(bad)
        );
    }
    let reason = "\u{200f}שינוי 👩\u{200d}💻 '; DROP TABLE orders; -- <b>";
    let body = gql_as(&client, &token, cancel, json!({ "o": order, "r": reason })).await;
    assert!(body["errors"].is_null(), "{body}");
    let o = order_in(&client, &token, &order, &["CANCELLED"], None).await;
    assert_eq!(o["cancelReason"], reason.trim());

    // Shipment texts.
    let order = buy(&client, &token, &product, 1, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], None).await;
    let ship = "mutation($o: ID!, $c: String!, $t: String!) { shipOrder(orderId: $o, carrier: $c, trackingNumber: $t) { version } }";
    for (c, t) in [
        ("", "1"),
        ("DHL", "\u{0}"),
        ("D\u{7f}HL", "1"),
        (&"c".repeat(101) as &str, "1"),
    ] {
        let body = gql_as(&client, &admin, ship, json!({ "o": order, "c": c, "t": t })).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{c:?} {t:?}: {body}"
        );
    }
    let body = gql_as(
        &client,
        &admin,
        ship,
        json!({ "o": order, "c": " DHL 🚚 ", "t": "<JD>014600" }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    order_in(&client, &token, &order, &["SHIPPED"], None).await;
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
        json!({ "o": order }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let o = order_in(&client, &token, &order, &["DELIVERED"], None).await;
    assert_eq!(o["status"], "DELIVERED");

    // Review texts: the title is one line, the text may have several.
    let review = "mutation($p: ID!, $o: ID!, $r: Int!, $t: String!, $b: String!) {
        reviewProduct(productId: $p, orderId: $o, rating: $r, title: $t, body: $b) { version } }";
    for (r, t, b) in [
        (5, "nul\u{0}", ""),
        (5, "two\nlines", ""),
        (5, "", "\u{0}"),
        (5, &"t".repeat(201) as &str, ""),
        (5, "", &"b".repeat(5_001) as &str),
        (5, "", &"x".repeat(1_000_000) as &str),
    ] {
        let body = gql_as(
            &client,
            &token,
            review,
            json!({ "p": product, "o": order, "r": r, "t": t, "b": b }),
        )
        .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{}: {body}",
            short(t)
        );
    }
    for r in [0, 6, -1] {
        let body = gql_as(
            &client,
            &token,
            review,
            json!({ "p": product, "o": order, "r": r, "t": "", "b": "" }),
        )
        .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "rating {r}: {body}"
        );
    }
    let body = gql_as(
        &client,
        &token,
        review,
        json!({ "p": product, "o": order, "r": 4, "t": "Schön ☕ <i>", "b": "Line one\r\nline two\t'; --" }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    poll("the review", Duration::from_secs(30), || async {
        let body = gql(
            &client,
            "query($id: ID!) { product(id: $id) { reviews { title body rating } } }",
            json!({ "id": product }),
        )
        .await;
        (body["data"]["product"]["reviews"]
            == json!([{ "title": "Schön ☕ <i>", "body": "Line one\nline two\t'; --", "rating": 4 }]))
        .then_some(())
    })
    .await;
}
