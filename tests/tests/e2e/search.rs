//! Catalogue search over a seeded catalogue of 1,000 products: full text, filters and sort
//! orders return the right products in the right order; cursor paging in either direction
//! visits each product exactly once; and stitched product details (live stock, rating, brand)
//! cost the same number of SQL statements whatever the page size.

use crate::common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const N: usize = 1000;
const NOUNS: [&str; 5] = ["lamp", "chair", "table", "kettle", "rug"];
const COLORS: [&str; 3] = ["red", "green", "blue"];
const BRANDS: [&str; 4] = ["Acme", "Globex", "Initech", "Umbrella"];

#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    name: String,
    price: i64,
    stock: i64,
    category: String,
    color: &'static str,
    brand: String,
    name_has_lamp: bool,
    description_has_lamp: bool,
}

fn seed_spec(run: &str, i: usize) -> Seeded {
    let noun = NOUNS[i % NOUNS.len()];
    Seeded {
        id: String::new(),
        name: format!("{noun} {run} model {:04}", (i * 7919) % N),
        price: ((i * 7919) % 5000) as i64 * 3 + 100,
        stock: if i.is_multiple_of(10) {
            0
        } else {
            (i % 50) as i64 + 1
        },
        category: format!("{run}-c{}", i % 4),
        color: COLORS[i % COLORS.len()],
        brand: format!("{}-{run}", BRANDS[i % BRANDS.len()]),
        name_has_lamp: noun == "lamp",
        description_has_lamp: i.is_multiple_of(7),
    }
}

const CREATE: &str = "mutation($i: ProductInput!) { createProduct(input: $i) { id } }";

async fn seed(client: &reqwest::Client, admin: &str, run: &str) -> Vec<Seeded> {
    let bff = env("BFF_URL", "http://127.0.0.1:18000/graphql");
    futures::stream::iter(0..N)
        .map(|i| {
            let client = client.clone();
            let bff = bff.clone();
            let admin = admin.to_owned();
            let run = run.to_owned();
            async move {
                let mut s = seed_spec(&run, i);
                let description = if s.description_has_lamp {
                    "Goes well with a reading lamp."
                } else {
                    "Solid and simple."
                };
                let input = json!({
                    "name": s.name, "description": description,
                    "categories": [run, s.category], "brand": s.brand,
                    "attributes": [{ "key": "color", "value": s.color }],
                    "priceMinor": s.price, "currency": "EUR", "initialStock": s.stock,
                });
                // Seeding goes to the BFF directly: Envoy's rate limit is for clients.
                let body: Value = client
                    .post(&bff)
                    .bearer_auth(&admin)
                    .json(&json!({ "query": CREATE, "variables": { "i": input } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                s.id = body["data"]["createProduct"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("createProduct: {body}"))
                    .to_owned();
                s
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

const PAGE: &str = "query($q: String, $f: ProductFilter, $s: ProductSort, $first: Int, $after: String, $last: Int, $before: String) {
  products(query: $q, filter: $f, sort: $s, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name createdAt price { amountMinor } } }
  }
}";

/// Every id, paging forwards (`first`) or backwards (`last`) through the whole result.
async fn all_pages(
    client: &reqwest::Client,
    vars: Value,
    size: i64,
    backward: bool,
) -> (Vec<Value>, i64) {
    let mut nodes: Vec<Vec<Value>> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = -1;
    for _ in 0..=N {
        let mut v = vars.clone();
        if backward {
            v["last"] = json!(size);
            v["before"] = json!(cursor);
        } else {
            v["first"] = json!(size);
            v["after"] = json!(cursor);
        }
        let body = gql(client, PAGE, v).await;
        let conn = &body["data"]["products"];
        assert!(conn.is_object(), "{body}");
        total = conn["totalCount"].as_i64().unwrap();
        let page: Vec<Value> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        assert!(page.len() as i64 <= size);
        nodes.push(page);
        let info = &conn["pageInfo"];
        let more = if backward {
            info["hasPreviousPage"].as_bool().unwrap()
        } else {
            info["hasNextPage"].as_bool().unwrap()
        };
        if !more {
            break;
        }
        cursor = Some(
            info[if backward { "startCursor" } else { "endCursor" }]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    if backward {
        nodes.reverse();
    }
    (nodes.into_iter().flatten().collect(), total)
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_each_once(ids: &[String], expected: usize) {
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), expected, "visited count");
    assert_eq!(unique.len(), expected, "each product exactly once");
}

const DETAILS: &str = "query($f: ProductFilter, $first: Int) {
  products(filter: $f, sort: NAME, first: $first) {
    edges { node { id name stock { onHand available } rating { average count } brand { name productCount } } }
  }
}";

#[tokio::test]
async fn search_filter_sort_and_page_a_thousand_products() {
    let client = http();
    let admin = admin_token(&client).await;
    let run = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let seeded = seed(&client, &admin, &run).await;
    let by_id: HashMap<&str, &Seeded> = seeded.iter().map(|s| (s.id.as_str(), s)).collect();
    let everything = json!({ "f": { "category": run } });

    // The projection catches up with all of them.
    poll(
        "1,000 seeded products in the catalogue",
        Duration::from_secs(120),
        || async {
            let body = gql(
                &client,
                PAGE,
                json!({ "f": { "category": run }, "first": 1 }),
            )
            .await;
            (body["data"]["products"]["totalCount"].as_i64() == Some(N as i64)).then_some(())
        },
    )
    .await;

    // By name, forwards and backwards, in byte order with ties by id: every product once.
    let mut expected: Vec<&Seeded> = seeded.iter().collect();
    expected.sort_by(|a, b| (a.name.as_bytes(), &a.id).cmp(&(b.name.as_bytes(), &b.id)));
    let expected_ids: Vec<String> = expected.iter().map(|s| s.id.clone()).collect();
    let mut vars = everything.clone();
    vars["s"] = json!("NAME");
    let (nodes, total) = all_pages(&client, vars.clone(), 97, false).await;
    assert_eq!(total, N as i64);
    assert_each_once(&ids(&nodes), N);
    assert_eq!(ids(&nodes), expected_ids, "name order, forwards");
    let (nodes, _) = all_pages(&client, vars, 64, true).await;
    assert_eq!(ids(&nodes), expected_ids, "name order, backwards");

    // Newest first: createdAt never increases, and every product once.
    let mut vars = everything.clone();
    vars["s"] = json!("NEWEST");
    let (nodes, _) = all_pages(&client, vars, 100, false).await;
    assert_each_once(&ids(&nodes), N);
    let times: Vec<chrono::DateTime<chrono::Utc>> = nodes
        .iter()
        .map(|n| n["createdAt"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Filters together, sorted by price both ways (ties by id).
    let cat = format!("{run}-c1");
    let filter = json!({ "category": cat, "minPriceMinor": 1000, "maxPriceMinor": 9000,
                         "inStock": true, "attributes": [{ "key": "color", "value": "blue" }] });
    let mut matching: Vec<&Seeded> = seeded
        .iter()
        .filter(|s| {
            s.category == cat
                && (1000..=9000).contains(&s.price)
                && s.stock > 0
                && s.color == "blue"
        })
        .collect();
    assert!(matching.len() > 10, "the filter test needs matches");
    matching.sort_by(|a, b| (a.price, &a.id).cmp(&(b.price, &b.id)));
    let asc: Vec<String> = matching.iter().map(|s| s.id.clone()).collect();
    let (nodes, total) =
        all_pages(&client, json!({ "f": filter, "s": "PRICE_ASC" }), 7, false).await;
    assert_eq!(total as usize, asc.len());
    assert_eq!(ids(&nodes), asc, "filtered, cheapest first");
    matching.sort_by(|a, b| {
        (std::cmp::Reverse(a.price), &a.id).cmp(&(std::cmp::Reverse(b.price), &b.id))
    });
    let desc: Vec<String> = matching.iter().map(|s| s.id.clone()).collect();
    let (nodes, _) = all_pages(&client, json!({ "f": filter, "s": "PRICE_DESC" }), 7, true).await;
    assert_eq!(
        ids(&nodes),
        desc,
        "filtered, dearest first, paged backwards"
    );

    // Full text: "lamp" matches names and descriptions; name matches rank first.
    let lamp: BTreeSet<String> = seeded
        .iter()
        .filter(|s| s.name_has_lamp || s.description_has_lamp)
        .map(|s| s.id.clone())
        .collect();
    let (nodes, total) = all_pages(
        &client,
        json!({ "q": "lamps", "f": { "category": run } }),
        50,
        false,
    )
    .await;
    let found = ids(&nodes);
    assert_each_once(&found, lamp.len());
    assert_eq!(total as usize, lamp.len());
    assert_eq!(found.iter().cloned().collect::<BTreeSet<_>>(), lamp);
    let first_description_only = found
        .iter()
        .position(|id| !by_id[id.as_str()].name_has_lamp)
        .unwrap();
    assert!(
        found[first_description_only..]
            .iter()
            .all(|id| !by_id[id.as_str()].name_has_lamp),
        "every name match ranks above every description-only match"
    );
    // Web-search syntax: excluding a word.
    let (nodes, _) = all_pages(
        &client,
        json!({ "q": "lamp -reading", "f": { "category": run } }),
        100,
        false,
    )
    .await;
    let expected: BTreeSet<String> = seeded
        .iter()
        .filter(|s| s.name_has_lamp && !s.description_has_lamp)
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(ids(&nodes).into_iter().collect::<BTreeSet<_>>(), expected);

    // Brand filter, with the stitched brand's product count.
    let brand = format!("Acme-{run}");
    let body = gql(
        &client,
        DETAILS,
        json!({ "f": { "brand": brand }, "first": 3 }),
    )
    .await;
    let edges = body["data"]["products"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3, "{body}");
    for e in edges {
        let node = &e["node"];
        let s = by_id[node["id"].as_str().unwrap()];
        assert_eq!(node["brand"]["name"], json!(brand));
        assert_eq!(node["brand"]["productCount"], json!(N / BRANDS.len()));
        assert_eq!(node["stock"]["onHand"], json!(s.stock));
        assert_eq!(node["rating"]["count"], json!(0));
    }

    // Bad paging input gets a clear error.
    for (vars, what) in [
        (json!({ "first": 101 }), "page too large"),
        (json!({ "first": 5, "last": 5 }), "both directions"),
        (
            json!({ "first": 5, "after": "garbage" }),
            "malformed cursor",
        ),
    ] {
        let (_, body) = gql_raw(&client, PAGE, vars).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{what}: {body}"
        );
    }

    // Stitched details cost the same SQL statements for 5 products as for 100: one search,
    // one count, and one batched statement each for stock, ratings and brands.
    let mut costs = Vec::new();
    for first in [5, 100] {
        let before = shop_sql_statements(&client).await;
        let body = gql(
            &client,
            DETAILS,
            json!({ "f": { "category": run }, "first": first }),
        )
        .await;
        let edges = body["data"]["products"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first, "{body}");
        assert!(edges
            .iter()
            .all(|e| e["node"]["stock"].is_object() && e["node"]["brand"]["name"].is_string()));
        costs.push(shop_sql_statements(&client).await - before);
    }
    assert_eq!(
        costs[0], costs[1],
        "SQL statements for 5 and for 100 products"
    );
    assert!(costs[1] <= 5.0, "{costs:?} SQL statements for a page");
}
