// Orders in the back office: the list with a status filter and paging, a live feed of new
// orders (`orderPlaced`), and an order's page with fulfilment (ship, delivered) and refunds.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { useMutation, useSubscription, useQuery } from "urql";
import { errorMessage } from "../client";
import { date, money, parseAmount, shortId, status, type DateTime } from "../format";
import { ORDERS_FIELDS, type OrdersPage } from "../shop/Account";
import { ProductName, StatusSteps, useLiveOrder } from "../shop/OrderPage";
import { Alert, Empty, Field, Loading, Title } from "../ui";

const STATUSES = ["", "PLACED", "STOCK_RESERVED", "PAYMENT_AUTHORIZED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];

interface Placed {
  orderId: string;
  customerId: string;
  total: { amountMinor: number; currency: string };
  itemCount: number;
  placedAt: DateTime;
}

function LiveFeed({ onNew }: { onNew: (orderId: string) => void }) {
  const [feed] = useSubscription<{ orderPlaced: Placed }, Placed[]>(
    { query: `subscription { orderPlaced { orderId customerId itemCount placedAt total { amountMinor currency } } }` },
    (prev = [], d) => [d.orderPlaced, ...prev.filter((p) => p.orderId !== d.orderPlaced.orderId)].slice(0, 20),
  );
  const n = feed.data?.length ?? 0;
  // Each new order once (not on every render: `onNew` refetches the list, which re-renders).
  const notify = useRef(onNew);
  notify.current = onNew;
  const newest = feed.data?.[0]?.orderId;
  useEffect(() => {
    if (newest) notify.current(newest);
  }, [n, newest]);
  return (
    <aside className="panel feed" aria-labelledby="feed-title">
      <h2 id="feed-title">
        <span className="live-dot" aria-hidden="true" /> New orders, live
      </h2>
      <ul aria-live="polite" aria-label="New orders">
        {(feed.data ?? []).map((p) => (
          <li key={p.orderId}>
            <Link to={`/admin/orders/${p.orderId}`}>{shortId(p.orderId)}</Link> · {p.itemCount} item{p.itemCount === 1 ? "" : "s"} ·{" "}
            <strong>{money(p.total.amountMinor, p.total.currency)}</strong>
            <br />
            <small className="muted">{date(p.placedAt)}</small>
          </li>
        ))}
      </ul>
      {n === 0 && <p className="muted">Orders placed from now on appear here.</p>}
    </aside>
  );
}

export function AdminOrders() {
  const [params, setParams] = useSearchParams();
  const st = params.get("status") ?? "";
  const after = params.get("after") ?? undefined;
  const [res, refetch] = useQuery<{ orders: OrdersPage }>({
    query: `query($f: OrderFilter, $after: String) { orders(filter: $f, first: 20, after: $after) { ${ORDERS_FIELDS} } }`,
    variables: { f: st ? { status: st } : {}, after },
    requestPolicy: "cache-and-network",
  });
  useEffect(() => {
    document.title = "Orders · Back office";
  }, []);
  const data = res.data?.orders;
  // A new order from the feed: the list is read again until the read model has it.
  const [expect, setExpect] = useState<string | null>(null);
  const tries = useRef(0);
  const missing = !!expect && !st && !after && !!data && !data.edges.some((e) => e.node.id === expect);
  useEffect(() => {
    if (!missing) {
      tries.current = 0;
      return;
    }
    if (++tries.current > 60) return;
    const t = setTimeout(() => refetch({ requestPolicy: "network-only" }), tries.current === 1 ? 0 : 400);
    return () => clearTimeout(t);
  }, [missing, res.data, refetch]);
  return (
    <div className="admin-grid">
      <section aria-labelledby="orders-title">
        <h1 id="orders-title">Orders</h1>
        <div className="toolbar">
          <label htmlFor="status-filter">Status</label>
          <select id="status-filter" value={st} onChange={(e) => setParams(e.target.value ? { status: e.target.value } : {})}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s ? status(s) : "All"}
              </option>
            ))}
          </select>
          <span className="muted">{data ? `${data.totalCount} order${data.totalCount === 1 ? "" : "s"}` : ""}</span>
        </div>
        <Alert message={errorMessage(res.error)} />
        {!data && <Loading />}
        {data && data.edges.length === 0 && <Empty>No orders.</Empty>}
        {data && data.edges.length > 0 && (
          <div className="panel table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Order</th>
                  <th scope="col">Placed</th>
                  <th scope="col">Items</th>
                  <th scope="col">Status</th>
                  <th scope="col" className="num">Total</th>
                </tr>
              </thead>
              <tbody>
                {data.edges.map(({ node: o }) => (
                  <tr key={o.id}>
                    <td>
                      <Link to={`/admin/orders/${o.id}`}>{shortId(o.id)}</Link>
                    </td>
                    <td>{date(o.placedAt)}</td>
                    <td>{o.lines.reduce((n, l) => n + l.quantity, 0)}</td>
                    <td>
                      <span className={`pill pill-${o.status.toLowerCase()}`}>{status(o.status)}</span>
                    </td>
                    <td className="num">{money(o.total.amountMinor, o.total.currency)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {data.pageInfo.hasNextPage && (
              <nav aria-label="Pages" className="pager">
                <button type="button" onClick={() => setParams({ ...(st ? { status: st } : {}), after: data.pageInfo.endCursor ?? "" })}>
                  Older →
                </button>
              </nav>
            )}
          </div>
        )}
      </section>
      <LiveFeed onNew={setExpect} />
    </div>
  );
}

export function AdminOrder() {
  const { id = "" } = useParams();
  const { res, status: current, refetch, pending } = useLiveOrder(id);
  const [carrier, setCarrier] = useState("");
  const [tracking, setTracking] = useState("");
  const [refund, setRefund] = useState("");
  const [msg, setMsg] = useState<{ text: string; ok: boolean } | null>(null);
  const [, ship] = useMutation<{ shipOrder: { version: number } }>(`mutation($o: ID!, $c: String!, $t: String!) { shipOrder(orderId: $o, carrier: $c, trackingNumber: $t) { version } }`);
  const [, deliver] = useMutation<{ markDelivered: { version: number } }>(`mutation($o: ID!) { markDelivered(orderId: $o) { version } }`);
  const [, refundPay] = useMutation<{ refundPayment: { version: number } }>(`mutation($o: ID!, $a: Int!, $k: String) { refundPayment(orderId: $o, amountMinor: $a, idempotencyKey: $k) { version } }`);
  const o = res.data?.order;
  if (!o) return res.error && !pending ? <Alert message={errorMessage(res.error)} /> : <Loading what="Loading the order" />;
  const st = current ?? o.status;
  const cur = o.total.currency;
  const done = (r: { error?: Parameters<typeof errorMessage>[0]; data?: Record<string, { version: number }> | null }, ok: string) => {
    if (r.error) setMsg({ text: errorMessage(r.error) ?? "Failed.", ok: false });
    else {
      setMsg({ text: ok, ok: true });
      const v = Object.values(r.data ?? {})[0]?.version;
      if (v) refetch(v);
    }
  };
  const onShip = async (e: FormEvent) => {
    e.preventDefault();
    done(await ship({ o: o.id, c: carrier, t: tracking }), "Shipped.");
  };
  const onRefund = async (e: FormEvent) => {
    e.preventDefault();
    const a = parseAmount(refund);
    if (a === null || a <= 0) return setMsg({ text: "Enter an amount such as 12.50.", ok: false });
    done(await refundPay({ o: o.id, a, k: `refund-${o.id}-${o.version}-${a}` }), "Refund requested.");
  };
  return (
    <section className="order">
      <p>
        <Link to="/admin">← Orders</Link>
      </p>
      <Title>{`Order ${shortId(o.id)}`}</Title>
      <p className="muted">
        Placed {date(o.placedAt)} by customer <code>{o.customerId}</code>
      </p>
      <div className="panel">
        <p role="status" aria-live="polite" className="order-status">
          Status: <strong data-testid="order-status">{status(st)}</strong>
        </p>
        <StatusSteps current={st} />
        {o.carrier && (
          <p>
            {o.carrier}, tracking number {o.trackingNumber}
          </p>
        )}
      </div>
      <Alert message={msg?.text} kind={msg?.ok ? "ok" : "error"} />
      <div className="order-layout">
        <section className="panel" aria-labelledby="lines-title">
          <h2 id="lines-title">Items</h2>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Product</th>
                <th scope="col">Qty</th>
                <th scope="col" className="num">Unit</th>
              </tr>
            </thead>
            <tbody>
              {o.lines.map((l) => (
                <tr key={l.productId}>
                  <td>
                    <ProductName id={l.productId} />
                  </td>
                  <td>{l.quantity}</td>
                  <td className="num">{money(l.unitPriceMinor, cur)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row" colSpan={2}>
                  Total
                </th>
                <td className="num">{money(o.total.amountMinor, cur)}</td>
              </tr>
              <tr>
                <th scope="row" colSpan={2}>
                  Refunded
                </th>
                <td className="num">{money(o.refundedMinor, cur)}</td>
              </tr>
            </tfoot>
          </table>
          {o.payment && (
            <p className="muted">
              Payment: {o.payment.status.toLowerCase()}, {o.payment.cardBrand} ending {o.payment.cardLast4}
              {o.payment.declineReason ? ` (declined: ${o.payment.declineReason})` : ""}
            </p>
          )}
        </section>
        <section className="panel" aria-labelledby="fulfil-title">
          <h2 id="fulfil-title">Fulfilment</h2>
          {st === "CONFIRMED" && (
            <form onSubmit={onShip}>
              <Field label="Carrier" name="carrier" value={carrier} onChange={setCarrier} required maxLength={100} />
              <Field label="Tracking number" name="tracking" value={tracking} onChange={setTracking} required maxLength={100} />
              <button type="submit" className="primary">
                Ship order
              </button>
            </form>
          )}
          {st === "SHIPPED" && (
            <button type="button" className="primary" onClick={async () => done(await deliver({ o: o.id }), "Marked delivered.")}>
              Mark delivered
            </button>
          )}
          {!["CONFIRMED", "SHIPPED"].includes(st) && <p className="muted">Nothing to do for a {status(st).toLowerCase()} order.</p>}
          {["CONFIRMED", "SHIPPED", "DELIVERED"].includes(st) && o.refundedMinor < o.total.amountMinor && (
            <form onSubmit={onRefund} className="refund">
              <h3>Refund</h3>
              <Field
                label={`Amount (${cur})`}
                name="refund"
                value={refund}
                onChange={setRefund}
                inputMode="decimal"
                required
                hint={`Up to ${money(o.total.amountMinor - o.refundedMinor, cur)}`}
              />
              <button type="submit">Refund</button>
            </form>
          )}
        </section>
      </div>
      <section className="panel" aria-labelledby="tl-title">
        <h2 id="tl-title">Timeline</h2>
        <ol className="timeline">
          {o.timeline.map((t) => (
            <li key={t.version}>
              <time dateTime={t.occurredAt}>{date(t.occurredAt)}</time> {t.summary} <small className="muted">({t.actor})</small>
            </li>
          ))}
        </ol>
      </section>
    </section>
  );
}
