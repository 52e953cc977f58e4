// The catalogue: full-text search, filters (category, brand, price, in stock), sort order and
// cursor paging, all kept in the address so a page can be shared and reloaded.
import { useEffect, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { useQuery } from "urql";
import { errorMessage } from "../client";
import { money, parseAmount } from "../format";
import { ProductArt, Stars } from "../art";
import { Alert, Empty, Loading } from "../ui";

const PAGE = 12;

export const PRODUCTS = `query Products($q: String, $filter: ProductFilter, $sort: ProductSort, $first: Int, $after: String, $last: Int, $before: String) {
  products(query: $q, filter: $filter, sort: $sort, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id name categories price { amountMinor currency } stock { available } rating { average count } brand { name } } }
  }
}`;

export interface ProductCard {
  id: string;
  name: string;
  categories: string[];
  price: { amountMinor: number; currency: string };
  stock: { available: number };
  rating: { average: number; count: number };
  brand: { name: string } | null;
}

interface ProductsData {
  products: {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
    edges: { node: ProductCard }[];
  };
}

const SORTS: [string, string][] = [
  ["", "Best match / newest"],
  ["NEWEST", "Newest"],
  ["PRICE_ASC", "Price: low to high"],
  ["PRICE_DESC", "Price: high to low"],
  ["NAME", "Name"],
  ["RATING", "Best rated"],
];

export function Catalogue() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [form, setForm] = useState({
    category: params.get("category") ?? "",
    brand: params.get("brand") ?? "",
    min: params.get("min") ?? "",
    max: params.get("max") ?? "",
    inStock: params.get("inStock") === "1",
    sort: params.get("sort") ?? "",
  });
  const [narrow] = useState(() => window.matchMedia("(max-width: 860px)").matches);
  useEffect(() => {
    document.title = q ? `“${q}” · Commerce` : "Shop · Commerce";
  }, [q]);

  const minMinor = params.get("min") ? parseAmount(params.get("min") ?? "") : null;
  const maxMinor = params.get("max") ? parseAmount(params.get("max") ?? "") : null;
  const filter = {
    category: params.get("category") || undefined,
    brand: params.get("brand") || undefined,
    minPriceMinor: minMinor ?? undefined,
    maxPriceMinor: maxMinor ?? undefined,
    inStock: params.get("inStock") === "1",
  };
  const before = params.get("before");
  const after = params.get("after");
  const [res] = useQuery<ProductsData>({
    query: PRODUCTS,
    variables: {
      q: q || undefined,
      filter,
      sort: params.get("sort") || undefined,
      ...(before ? { last: PAGE, before } : { first: PAGE, after: after || undefined }),
    },
  });

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (q) p.set("q", q);
    if (form.category.trim()) p.set("category", form.category.trim());
    if (form.brand.trim()) p.set("brand", form.brand.trim());
    if (form.min.trim()) p.set("min", form.min.trim());
    if (form.max.trim()) p.set("max", form.max.trim());
    if (form.inStock) p.set("inStock", "1");
    if (form.sort) p.set("sort", form.sort);
    setParams(p);
  };
  const page = (dir: "after" | "before", cursor: string | null) => {
    const p = new URLSearchParams(params);
    p.delete("after");
    p.delete("before");
    if (cursor) p.set(dir, cursor);
    setParams(p);
    window.scrollTo(0, 0);
  };
  const data = res.data?.products;
  const badPrice = (form.min && parseAmount(form.min) === null) || (form.max && parseAmount(form.max) === null);

  return (
    <div className="catalogue">
      <section className="hero" aria-labelledby="hero-title">
        <h1 id="hero-title">{q ? <>Results for “{q}”</> : "Everything for the everyday"}</h1>
        <p className="muted">{data ? `${data.totalCount} product${data.totalCount === 1 ? "" : "s"}` : " "}</p>
      </section>
      <div className="catalogue-body">
        <aside aria-label="Filters" className="filters panel">
          {/* Folded on a phone, so the products come first. */}
          <details open={!narrow}>
            <summary>
              <h2>Filters</h2>
            </summary>
          <form onSubmit={apply}>
            <div className="field">
              <label htmlFor="f-category">Category</label>
              <input id="f-category" value={form.category} onChange={(e) => setForm({ ...form, category: e.target.value })} />
            </div>
            <div className="field">
              <label htmlFor="f-brand">Brand</label>
              <input id="f-brand" value={form.brand} onChange={(e) => setForm({ ...form, brand: e.target.value })} />
            </div>
            <div className="field-row">
              <div className="field">
                <label htmlFor="f-min">Min price</label>
                <input id="f-min" inputMode="decimal" value={form.min} onChange={(e) => setForm({ ...form, min: e.target.value })} />
              </div>
              <div className="field">
                <label htmlFor="f-max">Max price</label>
                <input id="f-max" inputMode="decimal" value={form.max} onChange={(e) => setForm({ ...form, max: e.target.value })} />
              </div>
            </div>
            <div className="field check">
              <input id="f-instock" type="checkbox" checked={form.inStock} onChange={(e) => setForm({ ...form, inStock: e.target.checked })} />
              <label htmlFor="f-instock">In stock only</label>
            </div>
            <div className="field">
              <label htmlFor="f-sort">Sort by</label>
              <select id="f-sort" value={form.sort} onChange={(e) => setForm({ ...form, sort: e.target.value })}>
                {SORTS.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </div>
            {badPrice && <Alert message="Prices are amounts like 12 or 12.50." />}
            <button type="submit" className="primary" disabled={!!badPrice}>
              Apply filters
            </button>
          </form>
          </details>
        </aside>
        <section aria-label="Products" className="results">
          <Alert message={errorMessage(res.error)} />
          {!data && res.fetching && <Loading what="Loading products" />}
          {data && data.edges.length === 0 && <Empty>No products match. Try fewer filters or other words.</Empty>}
          <ul className="grid">
            {data?.edges.map(({ node: p }) => (
              <li key={p.id} className="card">
                <Link to={`/products/${p.id}`} className="card-link">
                  <ProductArt name={p.name} />
                  <div className="card-body">
                    <p className="card-brand">{p.brand?.name ?? p.categories[0] ?? " "}</p>
                    <h3 className="card-title">{p.name}</h3>
                    <Stars average={p.rating.average} count={p.rating.count} />
                    <p className="card-foot">
                      <strong className="price">{money(p.price.amountMinor, p.price.currency)}</strong>
                      <span className={p.stock.available > 0 ? "stock ok" : "stock out"}>{p.stock.available > 0 ? "In stock" : "Sold out"}</span>
                    </p>
                  </div>
                </Link>
              </li>
            ))}
          </ul>
          {data && (data.pageInfo.hasPreviousPage || data.pageInfo.hasNextPage) && (
            <nav aria-label="Pages" className="pager">
              <button type="button" disabled={!data.pageInfo.hasPreviousPage} onClick={() => page("before", data.pageInfo.startCursor)}>
                ← Previous
              </button>
              <button type="button" disabled={!data.pageInfo.hasNextPage} onClick={() => page("after", data.pageInfo.endCursor)}>
                Next →
              </button>
            </nav>
          )}
        </section>
      </div>
    </div>
  );
}
