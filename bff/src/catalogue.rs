//! The catalogue in GraphQL: `product(id)` and `products(query, filter, sort, first/after,
//! last/before)` as a Relay connection. A product's live stock, rating and brand are stitched
//! in through per-request DataLoaders, so a page of any size costs one backend call (one SQL
//! statement) per kind of detail, never one per product.

use crate::clients::AuthedChannel as Channel;
use crate::connection::{Connection, Edge};
use crate::error::{gql, BffError};
use crate::schema::{backends, grpc};
use crate::shop::{parse_doc, Attribute, MoneyView};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use domain::values::ProductId;
use proto::queries::queries_client::QueriesClient;
use proto::queries::{ByIds, ByNames, SearchProductsRequest};
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
    pub created_at: String,
    #[graphql(skip)]
    pub brand_name: Option<String>,
}

#[derive(Deserialize)]
struct ProductDoc {
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
            created_at: d.created_at,
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
pub struct StockOf(String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RatingOf(String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrandOf(String);
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReviewsOf(String);

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
    pub created_at: String,
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

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ProductSort {
    /// Best match first (needs a query; without one, newest first).
    Relevance,
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
    /// Highest average rating first.
    Rating,
}

impl ProductSort {
    fn wire(self) -> &'static str {
        match self {
            ProductSort::Relevance => "RELEVANCE",
            ProductSort::Newest => "NEWEST",
            ProductSort::PriceAsc => "PRICE_ASC",
            ProductSort::PriceDesc => "PRICE_DESC",
            ProductSort::Name => "NAME",
            ProductSort::Rating => "RATING",
        }
    }
}

#[derive(InputObject, Default)]
pub struct ProductFilter {
    pub category: Option<String>,
    pub brand: Option<String>,
    /// Inclusive, in minor units.
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    /// Only products with units available now.
    #[graphql(default)]
    pub in_stock: bool,
    /// Every attribute given must match.
    #[graphql(default)]
    pub attributes: Vec<Attribute>,
}

pub type ProductConnection = Connection<Product>;

fn page_size(n: Option<i32>) -> Result<u32, BffError> {
    match n {
        None => Ok(0),
        Some(n) if (1..=100).contains(&n) => Ok(n as u32),
        Some(_) => Err(BffError::InvalidArgument(
            "first and last are from 1 to 100".into(),
        )),
    }
}

/// Loads the details the query asks for, for the whole page at once: one batch per kind,
/// however the resolvers of the page's products are scheduled. Their `load_one`s then hit
/// the request's cache.
async fn prefetch(ctx: &Context<'_>, edges: &[Edge<Product>]) -> Result<(), BffError> {
    let node = ctx.look_ahead().field("edges").field("node");
    let loader = loader(ctx)?;
    let ids = || edges.iter().map(|e| e.node.id.to_string());
    let stock = async {
        if node.field("stock").exists() {
            loader.load_many(ids().map(StockOf)).await?;
        }
        Ok::<_, BffError>(())
    };
    let rating = async {
        if node.field("rating").exists() {
            loader.load_many(ids().map(RatingOf)).await?;
        }
        Ok(())
    };
    let brand = async {
        if node.field("brand").exists() {
            let names: std::collections::BTreeSet<String> = edges
                .iter()
                .filter_map(|e| e.node.brand_name.clone())
                .collect();
            loader.load_many(names.into_iter().map(BrandOf)).await?;
        }
        Ok(())
    };
    let reviews = async {
        if node.field("reviews").exists() {
            loader.load_many(ids().map(ReviewsOf)).await?;
        }
        Ok(())
    };
    futures::try_join!(stock, rating, brand, reviews)?;
    Ok(())
}

#[derive(Default)]
pub struct CatalogueMutation;

#[Object]
impl CatalogueMutation {
    /// Reviews a product the signed-in customer received in `orderId` (delivered): one
    /// review per customer and product, 1 to 5 stars.
    #[allow(clippy::too_many_arguments)]
    async fn review_product(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        order_id: ID,
        rating: i32,
        #[graphql(default)] title: String,
        #[graphql(default)] body: String,
        idempotency_key: Option<String>,
    ) -> Result<crate::shop::MutationResult> {
        gql(async move {
            crate::schema::caller(ctx).user()?;
            let product = ProductId::parse(&product_id)?;
            let order = domain::values::OrderId::parse(&order_id)?;
            let rating = domain::product::Rating::new(i64::from(rating))
                .map_err(|e| BffError::InvalidArgument(e.to_string()))?;
            let cmd = serde_json::json!({
                "type": "review", "order_id": order.to_string(), "rating": rating.get(),
                "title": title, "body": body,
            });
            crate::shop::exec(
                ctx,
                &backends(ctx).products,
                product.to_string(),
                cmd,
                idempotency_key,
            )
            .await
        }
        .await)
    }
}

#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// A product of the catalogue.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Product> {
        gql(async move {
            let id = ProductId::parse(&id)?;
            let docs = backends(ctx)
                .shop
                .clone()
                .get_products(grpc(
                    ctx,
                    ByIds {
                        ids: vec![id.to_string()],
                    },
                ))
                .await?
                .into_inner();
            let doc = docs
                .json
                .first()
                .ok_or_else(|| BffError::NotFound("product not found".into()))?;
            Ok(parse_doc::<ProductDoc>(doc)?.into())
        }
        .await)
    }

    /// Search and browse the catalogue: full text (`query`, web-search syntax), filters, a
    /// sort order, and Relay cursor pagination (`first`/`after` or `last`/`before`).
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "(first.or(last).unwrap_or(20).clamp(1, 100) as usize / 10 + 1) * child_complexity"
    )]
    async fn products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        filter: Option<ProductFilter>,
        sort: Option<ProductSort>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(
            default = false,
            desc = "Admins only: archived products too (`archived` tells them apart)."
        )]
        include_archived: bool,
    ) -> Result<ProductConnection> {
        gql(async move {
            if include_archived {
                crate::schema::caller(ctx).admin()?;
            }
            let f = filter.unwrap_or_default();
            let request = SearchProductsRequest {
                query: query.unwrap_or_default(),
                category: f.category.unwrap_or_default(),
                brand: f.brand.unwrap_or_default(),
                min_price_minor: f.min_price_minor,
                max_price_minor: f.max_price_minor,
                in_stock: f.in_stock,
                attributes: f.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                sort: sort.map(|s| s.wire().to_owned()).unwrap_or_default(),
                first: page_size(first)?,
                after: after.unwrap_or_default(),
                last: page_size(last)?,
                before: before.unwrap_or_default(),
                include_archived,
            };
            let page = backends(ctx)
                .shop
                .clone()
                .search_products(grpc(ctx, request))
                .await?
                .into_inner();
            let connection = Connection::of(page, |j| Ok(parse_doc::<ProductDoc>(j)?.into()))?;
            prefetch(ctx, &connection.edges).await?;
            Ok(connection)
        }
        .await)
    }
}
