// Products in the back office: the catalogue with stock, a form to add a product, and a
// product's page to edit its details, change its price, adjust its stock, archive it or put
// it back on sale.
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { useClient, useQuery } from "urql";
import { errorMessage } from "../client";
import { money, parseAmount } from "../format";
import { Alert, Empty, Field, Loading, Title, useRetryWhilePending } from "../ui";

interface Details {
  name: string;
  description: string;
  brand: string;
  categories: string;
  attributes: string;
}

function toInput(d: Details) {
  return {
    name: d.name,
    description: d.description,
    brand: d.brand.trim() || undefined,
    categories: d.categories.split(",").map((c) => c.trim()).filter(Boolean),
    attributes: d.attributes
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .map((l) => {
        const i = l.indexOf("=");
        return i < 0 ? { key: l, value: "" } : { key: l.slice(0, i).trim(), value: l.slice(i + 1).trim() };
      }),
  };
}

function DetailsFields({ d, set }: { d: Details; set: (d: Details) => void }) {
  return (
    <>
      <Field label="Name" name="name" value={d.name} onChange={(v) => set({ ...d, name: v })} required maxLength={200} />
      <Field label="Brand" name="brand" value={d.brand} onChange={(v) => set({ ...d, brand: v })} maxLength={100} />
      <Field label="Categories" name="categories" value={d.categories} onChange={(v) => set({ ...d, categories: v })} hint="Separated by commas, e.g. coffee, kitchen" />
      <Field label="Description" name="description" value={d.description} onChange={(v) => set({ ...d, description: v })} maxLength={10000} multiline />
      <Field label="Attributes" name="attributes" value={d.attributes} onChange={(v) => set({ ...d, attributes: v })} multiline hint="One per line: key = value" />
    </>
  );
}

interface AdminRow {
  id: string;
  name: string;
  archived: boolean;
  price: { amountMinor: number; currency: string };
  stock: { available: number };
  brand: { name: string } | null;
}

// Archived products too: the back office can find them and put them back on sale.
const ADMIN_PRODUCTS = `query AdminProducts($q: String, $sort: ProductSort, $first: Int, $after: String, $last: Int, $before: String) {
  products(query: $q, sort: $sort, first: $first, after: $after, last: $last, before: $before, includeArchived: true) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id name archived price { amountMinor currency } stock { available } brand { name } } }
  }
}`;

export function AdminProducts() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [text, setText] = useState(q);
  const before = params.get("before");
  const after = params.get("after");
  const [res] = useQuery<{ products: { totalCount: number; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string; endCursor: string }; edges: { node: AdminRow }[] } }>({
    query: ADMIN_PRODUCTS,
    variables: { q: q || undefined, sort: q ? undefined : "NEWEST", ...(before ? { last: 25, before } : { first: 25, after: after || undefined }) },
    requestPolicy: "cache-and-network",
  });
  useEffect(() => {
    document.title = "Products · Back office";
  }, []);
  const data = res.data?.products;
  return (
    <section aria-labelledby="products-title">
      <div className="toolbar">
        <h1 id="products-title">Products</h1>
        <Link to="/admin/products/new" className="button primary">
          New product
        </Link>
      </div>
      <form
        role="search"
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setParams(text.trim() ? { q: text.trim() } : {});
        }}
      >
        <label htmlFor="admin-search">Search</label>
        <input id="admin-search" type="search" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Search</button>
        <span className="muted">{data ? `${data.totalCount} products` : ""}</span>
      </form>
      <Alert message={errorMessage(res.error)} />
      {!data && <Loading />}
      {data && data.edges.length === 0 && <Empty>No products.</Empty>}
      {data && data.edges.length > 0 && (
        <div className="panel table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Brand</th>
                <th scope="col" className="num">Price</th>
                <th scope="col" className="num">Available</th>
              </tr>
            </thead>
            <tbody>
              {data.edges.map(({ node: p }) => (
                <tr key={p.id}>
                  <td>
                    <Link to={`/admin/products/${p.id}`}>{p.name}</Link>
                    {p.archived && <span className="pill pill-bad"> Archived</span>}
                  </td>
                  <td>{p.brand?.name ?? ""}</td>
                  <td className="num">{money(p.price.amountMinor, p.price.currency)}</td>
                  <td className={`num ${p.stock.available === 0 ? "stock out" : ""}`}>{p.stock.available}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav aria-label="Pages" className="pager">
            <button type="button" disabled={!data.pageInfo.hasPreviousPage} onClick={() => setParams({ ...(q ? { q } : {}), before: data.pageInfo.startCursor })}>
              ← Previous
            </button>
            <button type="button" disabled={!data.pageInfo.hasNextPage} onClick={() => setParams({ ...(q ? { q } : {}), after: data.pageInfo.endCursor })}>
              Next →
            </button>
          </nav>
        </div>
      )}
    </section>
  );
}

export function AdminProductNew() {
  const client = useClient();
  const navigate = useNavigate();
  const [d, setD] = useState<Details>({ name: "", description: "", brand: "", categories: "", attributes: "" });
  const [price, setPrice] = useState("");
  const [currency, setCurrency] = useState("EUR");
  const [stock, setStock] = useState("0");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const p = parseAmount(price);
    if (p === null) return setError("Enter the price as an amount, e.g. 12.50.");
    const s = Number(stock);
    if (!Number.isInteger(s) || s < 0) return setError("Stock is a whole number of units.");
    const r = await client
      .mutation<{ createProduct: { id: string } }>(`mutation($i: ProductInput!) { createProduct(input: $i) { id version } }`, {
        i: { ...toInput(d), priceMinor: p, currency: currency.trim().toUpperCase(), initialStock: s },
      })
      .toPromise();
    if (r.error || !r.data) return setError(errorMessage(r.error) ?? "Not created.");
    navigate(`/admin/products/${r.data.createProduct.id}?created=1`);
  };
  return (
    <section className="panel narrow wide-form">
      <Title>New product</Title>
      <form onSubmit={submit}>
        <DetailsFields d={d} set={setD} />
        <div className="field-row">
          <Field label="Price" name="price" value={price} onChange={setPrice} required inputMode="decimal" />
          <Field label="Currency" name="currency" value={currency} onChange={setCurrency} required maxLength={3} />
          <Field label="Initial stock" name="stock" value={stock} onChange={setStock} required inputMode="numeric" />
        </div>
        <Alert message={error} />
        <button type="submit" className="primary">
          Create product
        </button>
      </form>
    </section>
  );
}

interface AdminProduct {
  id: string;
  name: string;
  description: string;
  categories: string[];
  attributes: { key: string; value: string }[];
  archived: boolean;
  version: number;
  price: { amountMinor: number; currency: string };
  stock: { onHand: number; reserved: number; available: number };
  brand: { name: string } | null;
}

export function AdminProductEdit() {
  const { id = "" } = useParams();
  const [params] = useSearchParams();
  const client = useClient();
  const [res, refetch] = useQuery<{ product: AdminProduct }>({
    query: `query($id: ID!) { product(id: $id) { id name description categories attributes { key value } archived version price { amountMinor currency } stock { onHand reserved available } brand { name } } }`,
    variables: { id },
    requestPolicy: "network-only",
  });
  const [d, setD] = useState<Details | null>(null);
  const [price, setPrice] = useState("");
  const [delta, setDelta] = useState("");
  const [reason, setReason] = useState("");
  const [msg, setMsg] = useState<{ text: string; ok: boolean } | null>(params.get("created") ? { text: "Product created.", ok: true } : null);
  const p = res.data?.product;
  // After a change, the read model is read again until it has the version the change made.
  const [want, setWant] = useState(0);
  const tries = useRef(0);
  const behind = !!p && p.version < want;
  useEffect(() => {
    if (!behind) {
      tries.current = 0;
      return;
    }
    if (++tries.current > 100) return;
    const t = setTimeout(() => refetch({ requestPolicy: "network-only" }), 300);
    return () => clearTimeout(t);
  }, [behind, res.data, refetch]);
  const again = useCallback(() => refetch({ requestPolicy: "network-only" }), [refetch]);
  const pending = useRetryWhilePending(res.error, again);
  useEffect(() => {
    if (!p) return;
    document.title = `${p.name} · Back office`;
    setD({
      name: p.name,
      description: p.description,
      brand: p.brand?.name ?? "",
      categories: p.categories.join(", "),
      attributes: p.attributes.map((a) => `${a.key} = ${a.value}`).join("\n"),
    });
    setPrice((p.price.amountMinor / 100).toFixed(2));
  }, [p]);
  if (!p || !d) return res.error && !pending ? <Alert message={errorMessage(res.error)} /> : <Loading />;

  const run = async (query: string, variables: object, ok: string) => {
    const r = await client.mutation<Record<string, { version: number }>>(query, variables).toPromise();
    setMsg(r.error ? { text: errorMessage(r.error) ?? "Failed.", ok: false } : { text: ok, ok: true });
    const v = r.data && Object.values(r.data)[0]?.version;
    if (v) setWant(v);
    return !r.error;
  };
  return (
    <section>
      <p>
        <Link to="/admin/products">← Products</Link> · <Link to={`/products/${p.id}`}>View in the store</Link>
      </p>
      <Title>{p.name}</Title>
      {p.archived && <p className="pill pill-bad">Archived</p>}
      <Alert message={msg?.text} kind={msg?.ok ? "ok" : "error"} />
      <div className="account-layout">
        <form
          className="panel"
          aria-labelledby="details-title"
          onSubmit={(e) => {
            e.preventDefault();
            run(`mutation($id: ID!, $i: ProductDetailsInput!) { updateProduct(id: $id, input: $i) { version } }`, { id: p.id, i: toInput(d) }, "Details saved.");
          }}
        >
          <h2 id="details-title">Details</h2>
          <DetailsFields d={d} set={setD} />
          <button type="submit" className="primary" disabled={p.archived}>
            Save details
          </button>
        </form>
        <div>
          <form
            className="panel"
            aria-labelledby="price-title"
            onSubmit={(e) => {
              e.preventDefault();
              const a = parseAmount(price);
              if (a === null) return setMsg({ text: "Enter the price as an amount, e.g. 12.50.", ok: false });
              run(`mutation($id: ID!, $p: Int!, $c: String!) { changeProductPrice(id: $id, priceMinor: $p, currency: $c) { version } }`, { id: p.id, p: a, c: p.price.currency }, "Price changed.");
            }}
          >
            <h2 id="price-title">Price</h2>
            <Field label={`Price (${p.price.currency})`} name="price" value={price} onChange={setPrice} required inputMode="decimal" />
            <button type="submit" disabled={p.archived}>
              Change price
            </button>
          </form>
          <form
            className="panel"
            aria-labelledby="stock-title"
            onSubmit={async (e) => {
              e.preventDefault();
              const n = Number(delta);
              if (!Number.isInteger(n) || n === 0) return setMsg({ text: "Enter a whole number of units, e.g. 10 or -2.", ok: false });
              if (await run(`mutation($id: ID!, $d: Int!, $r: String!) { adjustStock(id: $id, delta: $d, reason: $r) { version } }`, { id: p.id, d: n, r: reason }, "Stock adjusted.")) {
                setDelta("");
                setReason("");
              }
            }}
          >
            <h2 id="stock-title">Stock</h2>
            <p>
              On hand <strong>{p.stock.onHand}</strong> · reserved <strong>{p.stock.reserved}</strong> · available <strong>{p.stock.available}</strong>
            </p>
            <div className="field-row">
              <Field label="Change (units)" name="delta" value={delta} onChange={setDelta} required hint="Positive to receive, negative to write off" />
              <Field label="Reason" name="reason" value={reason} onChange={setReason} maxLength={500} />
            </div>
            <button type="submit">Adjust stock</button>
          </form>
          {p.archived && (
            <div className="panel">
              <h2>Back on sale</h2>
              <p className="muted">The product is archived: shoppers cannot find or buy it.</p>
              <button
                type="button"
                className="primary"
                onClick={() => run(`mutation($id: ID!) { unarchiveProduct(id: $id) { version } }`, { id: p.id }, "Product back on sale.")}
              >
                Put back on sale
              </button>
            </div>
          )}
          {!p.archived && (
            <div className="panel">
              <h2>Archive</h2>
              <p className="muted">Takes the product off sale until you put it back.</p>
              <button
                type="button"
                className="danger"
                onClick={() => {
                  if (window.confirm(`Archive ${p.name}?`)) run(`mutation($id: ID!) { archiveProduct(id: $id) { version } }`, { id: p.id }, "Product archived.");
                }}
              >
                Archive product
              </button>
            </div>
          )}
        </div>
      </div>
    </section>
  );
}
