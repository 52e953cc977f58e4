//! A product as GraphQL shows it, and the per-request DataLoaders that stitch in its live
//! stock, rating, reviews and brand: a page of any size costs one backend call (one SQL
//! statement) per kind of detail, never one per product.

use super::common::{Attribute, MoneyView};
use super::types::{de_time, time, Field};
use crate::clients::AuthedChannel as Channel;
use crate::context::parse_doc;
use crate::error::{gql, BffError};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{ComplexObject, Context, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use proto::queries::queries_client::QueriesClient;
use proto::queries::{ByIds, ByNames};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(SimpleObject, Clone)]
pub struct Stock {
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

#[derive(SimpleObject, Clone)]
pub struct Rating {
    /// The mean rating, 0 when there are no reviews.
    pub average: f64,
    pub count: i64,
}

#[derive(SimpleObject, Clone)]
pub struct Brand {
    pub name: String,
    /// How many products (not archived) the brand sells.
    pub product_count: i64,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Product {
    pub id: ID,
    pub name: String,
    pub description: String,
    pub categories: Vec<String>,
    pub attributes: Vec<Attribute>,
    pub price: MoneyView,
    pub archived: bool,
    pub version: i64,
    pub created_at: Field<DateTime<Utc>>,
    #[graphql(skip)]
    pub brand_name: Option<String>,
}

/// A product as the read model stores it.
#[derive(Deserialize)]
pub struct ProductDoc {
    id: String,
    name: String,
    description: String,
    categories: Vec<String>,
    attributes: std::collections::BTreeMap<String, String>,
    price: MoneyView,
    archived: bool,
    version: i64,
    brand: Option<String>,
    created_at: String,
}

impl From<ProductDoc> for Product {
    fn from(d: ProductDoc) -> Self {
        Self {
            id: ID(d.id),
            name: d.name,
            description: d.description,
            categories: d.categories,
            attributes: d
                .attributes
                .into_iter()
                .map(|(key, value)| Attribute { key, value })
                .collect(),
            price: d.price,
            archived: d.archived,
            version: d.version,
            created_at: time("Product.createdAt", &d.created_at),
            brand_name: d.brand,
        }
    }
}

#[ComplexObject]
impl Product {
    /// Live stock, batched across every product of the response.
    async fn stock(&self, ctx: &Context<'_>) -> Result<Stock> {
        gql(async move {
            loader(ctx)?
                .load_one(StockOf(self.id.to_string()))
                .await?
                .ok_or_else(|| BffError::NotFound("product not found".into()))
        }
        .await)
    }

    /// Average rating and review count, batched across the response.
    async fn rating(&self, ctx: &Context<'_>) -> Result<Rating> {
        gql(async move {
            Ok(loader(ctx)?
                .load_one(RatingOf(self.id.to_string()))
                .await?
                .unwrap_or(Rating {
                    average: 0.0,
                    count: 0,
                }))
        }
        .await)
    }

    /// The newest reviews (up to 10), batched across the response.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<Review>> {
        gql(async move {
            let mut all = loader(ctx)?
                .load_one(ReviewsOf(self.id.to_string()))
                .await?
                .unwrap_or_default();
            all.truncate(first.clamp(0, 10) as usize);
            Ok(all)
        }
        .await)
    }

    /// The brand the product is sold under, batched across the response.
    async fn brand(&self, ctx: &Context<'_>) -> Result<Option<Brand>> {
        gql(async move {
            match &self.brand_name {
                None => Ok(None),
                Some(name) => Ok(loader(ctx)?.load_one(BrandOf(name.clone())).await?),
            }
        }
        .await)
    }
}

/// Batches the catalogue's detail lookups of one request.
pub struct CatalogueLoader {
    shop: QueriesClient<Channel>,
}

/// A per-request loader (its cache must not outlive the request).
pub type CatalogueDataLoader = DataLoader<CatalogueLoader, HashMapCache>;

pub fn new_loader(shop: QueriesClient<Channel>) -> CatalogueDataLoader {
    DataLoader::with_cache(
        CatalogueLoader { shop },
        tokio::spawn,
        HashMapCache::default(),
    )
}

pub fn loader<'a>(ctx: &'a Context<'_>) -> Result<&'a CatalogueDataLoader, BffError> {
    ctx.data_opt::<CatalogueDataLoader>()
        .ok_or(BffError::Internal)
}

/// A product by id, for what links to one (a cart line).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProductOf(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StockOf(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RatingOf(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrandOf(pub String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReviewsOf(pub String);

/// A review by a customer who received the product. Public: it names the reviewer by a
/// display name ("Ann B.", or "Verified buyer" once their account is deleted), never by id.
#[derive(SimpleObject, Clone, Deserialize)]
pub struct Review {
    #[serde(skip_serializing)]
    #[graphql(skip)]
    pub product_id: String,
    /// The reviewer's first name and last initial.
    pub reviewer_name: String,
    /// 1 to 5 stars.
    pub rating: i32,
    pub title: String,
    pub body: String,
    #[serde(deserialize_with = "de_time")]
    pub created_at: Field<DateTime<Utc>>,
}

impl Loader<ReviewsOf> for CatalogueLoader {
    type Value = Vec<Review>;
    type Error = BffError;

    async fn load(&self, keys: &[ReviewsOf]) -> Result<HashMap<ReviewsOf, Vec<Review>>, BffError> {
        let ids = keys.iter().map(|k| k.0.clone()).collect();
        let docs = self
            .shop
            .clone()
            .get_reviews(ByIds { ids })
            .await?
            .into_inner();
        let mut out: HashMap<ReviewsOf, Vec<Review>> = HashMap::new();
        for j in &docs.json {
            let r: Review = parse_doc(j)?;
            out.entry(ReviewsOf(r.product_id.clone()))
                .or_default()
                .push(r);
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct StockDoc {
    id: String,
    on_hand: i64,
    reserved: i64,
    available: i64,
}

#[derive(Deserialize)]
struct RatingDoc {
    id: String,
    average: f64,
    count: i64,
}

#[derive(Deserialize)]
struct BrandDoc {
    name: String,
    product_count: i64,
}

impl Loader<ProductOf> for CatalogueLoader {
    type Value = Product;
    type Error = BffError;

    async fn load(&self, keys: &[ProductOf]) -> Result<HashMap<ProductOf, Product>, BffError> {
        let ids = keys.iter().map(|k| k.0.clone()).collect();
        let docs = self
            .shop
            .clone()
            .get_products(ByIds { ids })
            .await?
            .into_inner();
        docs.json
            .iter()
            .map(|j| {
                let d: ProductDoc = parse_doc(j)?;
                Ok((ProductOf(d.id.clone()), d.into()))
            })
            .collect()
    }
}

impl Loader<StockOf> for CatalogueLoader {
    type Value = Stock;
    type Error = BffError;

    async fn load(&self, keys: &[StockOf]) -> Result<HashMap<StockOf, Stock>, BffError> {
        let ids = keys.iter().map(|k| k.0.clone()).collect();
        let docs = self
            .shop
            .clone()
            .get_stock(ByIds { ids })
            .await?
            .into_inner();
        docs.json
            .iter()
            .map(|j| {
                let d: StockDoc = parse_doc(j)?;
                Ok((
                    StockOf(d.id),
                    Stock {
                        on_hand: d.on_hand,
                        reserved: d.reserved,
                        available: d.available,
                    },
                ))
            })
            .collect()
    }
}

impl Loader<RatingOf> for CatalogueLoader {
    type Value = Rating;
    type Error = BffError;

    async fn load(&self, keys: &[RatingOf]) -> Result<HashMap<RatingOf, Rating>, BffError> {
        let ids = keys.iter().map(|k| k.0.clone()).collect();
        let docs = self
            .shop
            .clone()
            .get_ratings(ByIds { ids })
            .await?
            .into_inner();
        docs.json
            .iter()
            .map(|j| {
                let d: RatingDoc = parse_doc(j)?;
                Ok((
                    RatingOf(d.id),
                    Rating {
                        average: d.average,
                        count: d.count,
                    },
                ))
            })
            .collect()
    }
}

impl Loader<BrandOf> for CatalogueLoader {
    type Value = Brand;
    type Error = BffError;

    async fn load(&self, keys: &[BrandOf]) -> Result<HashMap<BrandOf, Brand>, BffError> {
        let names = keys.iter().map(|k| k.0.clone()).collect();
        let docs = self
            .shop
            .clone()
            .get_brands(ByNames { names })
            .await?
            .into_inner();
        docs.json
            .iter()
            .map(|j| {
                let d: BrandDoc = parse_doc(j)?;
                Ok((
                    BrandOf(d.name.clone()),
                    Brand {
                        name: d.name,
                        product_count: d.product_count,
                    },
                ))
            })
            .collect()
    }
}
