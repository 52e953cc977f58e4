// A product: details, price, live stock, add to cart, and its reviews.
import { useCallback, useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useMutation, useQuery } from "urql";
import { errorCode, errorMessage } from "../client";
import { useCart } from "../cart";
import { date, money, type DateTime } from "../format";
import { ProductArt, Stars } from "../art";
import { Alert, Loading, useRetryWhilePending } from "../ui";

const PRODUCT = `query Product($id: ID!) {
  product(id: $id) {
    id name description categories archived attributes { key value }
    price { amountMinor currency } stock { available } rating { average count } brand { name productCount }
    reviews(first: 10) { rating title body createdAt reviewerName }
  }
}`;

interface ProductData {
  product: {
    id: string;
    name: string;
    description: string;
    categories: string[];
    archived: boolean;
    attributes: { key: string; value: string }[];
    price: { amountMinor: number; currency: string };
    stock: { available: number };
    rating: { average: number; count: number };
    brand: { name: string; productCount: number } | null;
    reviews: { rating: number; title: string; body: string; createdAt: DateTime; reviewerName: string }[];
  };
}

export function ProductPage() {
  const { id = "" } = useParams();
  const [res, refetch] = useQuery<ProductData>({ query: PRODUCT, variables: { id } });
  const again = useCallback(() => refetch({ requestPolicy: "network-only" }), [refetch]);
  const pending = useRetryWhilePending(res.error, again);
  const { ensureCart, refresh, forgetCart } = useCart();
  const [qty, setQty] = useState(1);
  const [added, setAdded] = useState<string | null>(null);
  const [addError, setAddError] = useState<string | null>(null);
  const [addState, add] = useMutation<{ addItemToCart: { version: number } }>(
    `mutation Add($cart: ID!, $p: ID!, $q: Int!) { addItemToCart(cartId: $cart, productId: $p, quantity: $q) { cartId version } }`,
  );
  const p = res.data?.product;
  useEffect(() => {
    if (p) document.title = `${p.name} · Commerce`;
  }, [p]);
  if (!p) return res.error && !pending ? <Alert message={errorMessage(res.error)} /> : <Loading what="Loading the product" />;

  const onAdd = async () => {
    setAdded(null);
    setAddError(null);
    try {
      let r = await add({ cart: await ensureCart(), p: p.id, q: qty });
      if (errorCode(r.error) === "NOT_FOUND") {
        // A cart id kept from before that the shop no longer has (a new cart is opened).
        forgetCart();
        r = await add({ cart: await ensureCart(), p: p.id, q: qty });
      }
      if (r.error) setAddError(errorMessage(r.error));
      else {
        refresh(r.data!.addItemToCart.version);
        setAdded(`Added ${qty} × ${p.name} to your cart.`);
      }
    } catch {
      setAddError("Could not open a cart. Please try again.");
    }
  };
  const available = p.stock.available;
  return (
    <article className="product">
      <nav aria-label="Breadcrumb" className="crumbs">
        <Link to="/">Shop</Link>
        {p.categories[0] && (
          <>
            {" / "}
            <Link to={`/?category=${encodeURIComponent(p.categories[0])}`}>{p.categories[0]}</Link>
          </>
        )}
      </nav>
      <div className="product-main">
        <ProductArt name={p.name} size="large" />
        <div className="product-info">
          {p.brand && (
            <p className="card-brand">
              <Link to={`/?brand=${encodeURIComponent(p.brand.name)}`}>{p.brand.name}</Link>
            </p>
          )}
          <h1>{p.name}</h1>
          <Stars average={p.rating.average} count={p.rating.count} />
          <p className="price big">{money(p.price.amountMinor, p.price.currency)}</p>
          <p className={available > 0 ? "stock ok" : "stock out"}>{p.archived ? "No longer sold" : available > 0 ? `${available} in stock` : "Sold out"}</p>
          {!p.archived && available > 0 && (
            <div className="buy">
              <label htmlFor="qty">Quantity</label>
              <select id="qty" value={qty} onChange={(e) => setQty(Number(e.target.value))}>
                {Array.from({ length: Math.min(10, available) }, (_, i) => i + 1).map((n) => (
                  <option key={n}>{n}</option>
                ))}
              </select>
              <button type="button" className="primary" onClick={onAdd} disabled={addState.fetching}>
                Add to cart
              </button>
            </div>
          )}
          <Alert message={added} kind="ok" />
          {added && (
            <p>
              <Link to="/cart">View your cart</Link>
            </p>
          )}
          <Alert message={addError} />
          {p.description && <p className="description">{p.description}</p>}
          {p.attributes.length > 0 && (
            <dl className="attributes">
              {p.attributes.map((a) => (
                <div key={a.key}>
                  <dt>{a.key}</dt>
                  <dd>{a.value}</dd>
                </div>
              ))}
            </dl>
          )}
        </div>
      </div>
      <section aria-labelledby="reviews-title" className="reviews panel">
        <h2 id="reviews-title">Reviews</h2>
        {p.reviews.length === 0 ? (
          <p className="muted">No reviews yet. Customers can review a product once it is delivered.</p>
        ) : (
          <ul>
            {p.reviews.map((r) => (
              <li key={r.reviewerName + r.createdAt} className="review">
                <Stars average={r.rating} />
                <strong> {r.title || "Review"}</strong>
                <p>{r.body}</p>
                <small className="muted">
                  {r.reviewerName}, {date(r.createdAt)}
                </small>
              </li>
            ))}
          </ul>
        )}
      </section>
    </article>
  );
}
