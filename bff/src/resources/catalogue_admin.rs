//! The catalogue's back office: an admin creates, edits, prices, archives and restocks
//! products. Every command is the domain's `ProductCommand`, its fields parsed by the
//! domain's value types before anything is sent.

use super::common::{derived_uuid, exec, money, Attribute, MutationResult};
use crate::context::{backends, caller};
use crate::error::{gql, BffError};
use async_graphql::{Context, InputObject, Object, Result, ID};
use domain::product::{ProductCommand, ProductFields};
use domain::values::{
    AttributeKey, AttributeValue, BrandName, Category, Description, ProductId, ProductName,
    StockReason,
};

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

/// A product's catalogue fields, each parsed by its domain type.
fn fields(
    name: &str,
    description: &str,
    categories: &[String],
    attributes: &[Attribute],
    brand: Option<&str>,
) -> Result<ProductFields, BffError> {
    Ok(ProductFields {
        name: ProductName::parse(name)?,
        description: Description::parse(description)?,
        categories: categories
            .iter()
            .map(|c| Category::parse(c))
            .collect::<Result<_, _>>()?,
        attributes: attributes
            .iter()
            .map(|a| {
                Ok((
                    AttributeKey::parse(&a.key)?,
                    AttributeValue::parse(&a.value)?,
                ))
            })
            .collect::<Result<_, BffError>>()?,
        brand: brand.map(BrandName::parse).transpose()?,
    })
}

impl ProductDetailsInput {
    fn fields(&self) -> Result<ProductFields, BffError> {
        fields(
            &self.name,
            &self.description,
            &self.categories,
            &self.attributes,
            self.brand.as_deref(),
        )
    }
}

impl ProductInput {
    /// The creation command of product `id`.
    fn command(&self, id: ProductId) -> Result<ProductCommand, BffError> {
        let initial_stock = u32::try_from(self.initial_stock)
            .map_err(|_| BffError::InvalidArgument("initial stock cannot be negative".into()))?;
        Ok(ProductCommand::Create {
            product_id: id,
            details: fields(
                &self.name,
                &self.description,
                &self.categories,
                &self.attributes,
                self.brand.as_deref(),
            )?,
            price: money(self.price_minor, &self.currency)?,
            initial_stock,
        })
    }
}

/// Sends `command` to product `id` for an admin.
async fn admin_exec(
    ctx: &Context<'_>,
    id: &ID,
    command: impl FnOnce() -> Result<ProductCommand, BffError>,
) -> Result<MutationResult, BffError> {
    caller(ctx).admin()?;
    let id = ProductId::parse(id)?;
    let command = command()?;
    exec(ctx, &backends(ctx).products, id.to_string(), &command, None).await
}

#[derive(Default)]
pub struct CatalogueAdminMutation;

#[Object]
impl CatalogueAdminMutation {
    /// Admin: adds a product to the catalogue.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: ProductInput,
        idempotency_key: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            let admin = caller(ctx).admin()?.sub.clone();
            // A retried creation (same key, same admin) names the same product, so the key,
            // which is scoped by stream and caller, finds the first result.
            let id = match &idempotency_key {
                Some(k) => ProductId::from(derived_uuid(&format!("product:{admin}:{k}"))),
                None => ProductId::generate(),
            };
            let cmd = input.command(id)?;
            exec(
                ctx,
                &backends(ctx).products,
                id.to_string(),
                &cmd,
                idempotency_key,
            )
            .await
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
        gql(admin_exec(ctx, &id, || {
            Ok(ProductCommand::Update {
                details: input.fields()?,
            })
        })
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
        gql(admin_exec(ctx, &id, || {
            Ok(ProductCommand::ChangePrice {
                price: money(price_minor, &currency)?,
            })
        })
        .await)
    }

    /// Admin: takes a product off sale.
    async fn archive_product(&self, ctx: &Context<'_>, id: ID) -> Result<MutationResult> {
        gql(admin_exec(ctx, &id, || Ok(ProductCommand::Archive)).await)
    }

    /// Admin: puts an archived product back on sale.
    async fn unarchive_product(&self, ctx: &Context<'_>, id: ID) -> Result<MutationResult> {
        gql(admin_exec(ctx, &id, || Ok(ProductCommand::Unarchive)).await)
    }

    /// Admin: receives (positive) or writes off (negative) stock.
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        delta: i64,
        reason: String,
    ) -> Result<MutationResult> {
        gql(admin_exec(ctx, &id, || {
            Ok(ProductCommand::AdjustStock {
                delta,
                reason: StockReason::parse(&reason)?,
            })
        })
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    fn attrs() -> Vec<Attribute> {
        vec![Attribute {
            key: "colour".into(),
            value: "red".into(),
        }]
    }

    fn json_of(c: &ProductCommand) -> serde_json::Value {
        serde_json::to_value(c).unwrap()
    }

    #[test]
    fn create_serializes_as_the_hand_written_command_did() {
        let input = ProductInput {
            name: "Mug".into(),
            description: "A mug".into(),
            categories: vec!["kitchen".into()],
            attributes: attrs(),
            brand: Some("Acme".into()),
            price_minor: 1299,
            currency: "EUR".into(),
            initial_stock: 5,
        };
        let cmd = input.command(ProductId::parse(ID).unwrap()).unwrap();
        let old = json!({
            "type": "create",
            "product_id": ID,
            "details": { "name": "Mug", "description": "A mug", "categories": ["kitchen"],
                         "attributes": { "colour": "red" }, "brand": "Acme" },
            "price": { "amount_minor": 1299, "currency": "EUR" },
            "initial_stock": 5,
        });
        assert_eq!(json_of(&cmd), old);
    }

    #[test]
    fn update_without_a_brand_leaves_it_out() {
        let input = ProductDetailsInput {
            name: "Mug".into(),
            description: String::new(),
            categories: vec![],
            attributes: attrs(),
            brand: None,
        };
        let cmd = ProductCommand::Update {
            details: input.fields().unwrap(),
        };
        let old = json!({ "type": "update", "details": { "name": "Mug", "description": "",
            "categories": [], "attributes": { "colour": "red" } } });
        assert_eq!(json_of(&cmd), old);
    }

    #[test]
    fn price_archive_unarchive_and_stock_serialize_as_before() {
        let price = ProductCommand::ChangePrice {
            price: money(500, "USD").unwrap(),
        };
        assert_eq!(
            json_of(&price),
            json!({ "type": "change_price", "price": { "amount_minor": 500, "currency": "USD" } })
        );
        assert_eq!(
            json_of(&ProductCommand::Archive),
            json!({ "type": "archive" })
        );
        assert_eq!(
            json_of(&ProductCommand::Unarchive),
            json!({ "type": "unarchive" })
        );
        let stock = ProductCommand::AdjustStock {
            delta: -3,
            reason: StockReason::parse("broken").unwrap(),
        };
        assert_eq!(
            json_of(&stock),
            json!({ "type": "adjust_stock", "delta": -3, "reason": "broken" })
        );
    }

    #[test]
    fn bad_input_is_invalid_argument() {
        let mut input = ProductInput {
            name: "Mug".into(),
            description: String::new(),
            categories: vec![],
            attributes: vec![],
            brand: None,
            price_minor: -1,
            currency: "EUR".into(),
            initial_stock: 0,
        };
        let id = ProductId::parse(ID).unwrap();
        assert!(matches!(
            input.command(id),
            Err(BffError::InvalidArgument(_))
        ));
        input.price_minor = 1;
        input.initial_stock = -1;
        assert!(matches!(
            input.command(id),
            Err(BffError::InvalidArgument(_))
        ));
        input.initial_stock = 0;
        input.name = String::new();
        assert!(matches!(
            input.command(id),
            Err(BffError::InvalidArgument(_))
        ));
    }
}
