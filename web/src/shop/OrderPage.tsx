// An order: its status, live (`orderStatusChanged`), its lines, payment and history; the
// customer may cancel it before it ships and review its products once delivered.
import { useCallback, useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useMutation, useQuery, useSubscription } from "urql";
import { errorMessage } from "../client";
import { date, money, shortId, status, type DateTime, type OrderStatus, type PaymentStatus } from "../format";
import { Alert, Field, Loading, Title, useRetryWhilePending } from "../ui";

export const ORDER = `query Order($id: ID!, $v: Int) {
  order(id: $id, atLeastVersion: $v) {
    id customerId status version placedAt refundedMinor carrier trackingNumber cancelReason
    total { amountMinor currency }
    lines { productId quantity unitPriceMinor }
    payment { status cardBrand cardLast4 declineReason refundedMinor amount { amountMinor currency } }
    timeline { version eventType summary actor occurredAt }
  }
}`;

export interface OrderData {
  order: {
    id: string;
    customerId: string;
    status: OrderStatus;
    version: number;
    placedAt: DateTime;
    refundedMinor: number;
    carrier: string | null;
    trackingNumber: string | null;
    cancelReason: string | null;
    total: { amountMinor: number; currency: string };
    lines: { productId: string; quantity: number; unitPriceMinor: number }[];
    payment: { status: PaymentStatus; cardBrand: string; cardLast4: string; declineReason: string | null; refundedMinor: number; amount: { amountMinor: number; currency: string } } | null;
    timeline: { version: number; eventType: string; summary: string; actor: string; occurredAt: DateTime }[];
  };
}

const STEPS = ["PLACED", "CONFIRMED", "SHIPPED", "DELIVERED"];

/// The order, kept current: the query, refetched at the version each status change names.
export function useLiveOrder(id: string) {
  const [minVersion, setMinVersion] = useState<number | undefined>(undefined);
  const [res, refetch] = useQuery<OrderData>({ query: ORDER, variables: { id, v: minVersion }, requestPolicy: "network-only" });
  const [live] = useSubscription<{ orderStatusChanged: { status: OrderStatus; version: number } }>({
    query: `subscription($id: ID!) { orderStatusChanged(orderId: $id) { status version } }`,
    variables: { id },
  });
  const liveStatus = live.data?.orderStatusChanged;
  useEffect(() => {
    if (liveStatus && (!res.data || liveStatus.version > res.data.order.version)) setMinVersion(liveStatus.version);
  }, [liveStatus, res.data]);
  // Just after checkout the read model may not have the order yet: ask again shortly.
  const again = useCallback(() => refetch({ requestPolicy: "network-only" }), [refetch]);
  const pending = useRetryWhilePending(res.error, again);
  const current = liveStatus && (!res.data || liveStatus.version >= res.data.order.version) ? liveStatus.status : res.data?.order.status;
  return { res, status: current, refetch: (v: number) => setMinVersion(v), pending };
}

export function ProductName({ id }: { id: string }) {
  const [r] = useQuery<{ product: { name: string } }>({ query: `query($id: ID!) { product(id: $id) { name } }`, variables: { id } });
  return <Link to={`/products/${id}`}>{r.data?.product.name ?? "Product"}</Link>;
}

export function StatusSteps({ current }: { current: string }) {
  if (current === "CANCELLED") return <p className="pill pill-bad">Cancelled</p>;
  const idx = current === "PLACED" || current === "STOCK_RESERVED" || current === "PAYMENT_AUTHORIZED" ? 0 : STEPS.indexOf(current);
  return (
    <ol className="steps" aria-label="Progress">
      {STEPS.map((s, i) => (
        <li key={s} className={i <= idx ? "done" : ""} aria-current={i === idx ? "step" : undefined}>
          {status(s)}
        </li>
      ))}
    </ol>
  );
}

export function OrderPage() {
  const { id = "" } = useParams();
  const { res, status: current, refetch, pending } = useLiveOrder(id);
  const [cancelState, cancel] = useMutation<{ cancelOrder: { version: number } }>(`mutation($o: ID!) { cancelOrder(orderId: $o) { version } }`);
  const [error, setError] = useState<string | null>(null);
  const o = res.data?.order;
  if (!o) {
    if (pending || (!res.error && current))
      return (
        <section className="panel narrow">
          <Title>Thank you!</Title>
          <p role="status">
            Order {shortId(id)}: <strong data-testid="order-status">{status(current ?? "PLACED")}</strong>
          </p>
          <Loading what="We are processing your order" />
        </section>
      );
    return res.error ? <Alert message={errorMessage(res.error)} /> : <Loading what="Loading your order" />;
  }
  const st = current ?? o.status;
  const cur = o.total.currency;
  return (
    <section className="order">
      <Title>{`Order ${shortId(o.id)}`}</Title>
      <p className="muted">Placed {date(o.placedAt)}</p>
      <div className="panel">
        <p role="status" aria-live="polite" className="order-status">
          Status: <strong data-testid="order-status">{status(st)}</strong>
        </p>
        <StatusSteps current={st} />
        {o.carrier && (
          <p>
            Shipped with {o.carrier}, tracking number <strong>{o.trackingNumber}</strong>
          </p>
        )}
        {o.cancelReason && <p>Cancelled: {o.cancelReason}</p>}
        {o.payment?.declineReason && <Alert message={`The payment was declined (${o.payment.declineReason}).`} />}
      </div>
      <div className="order-layout">
        <section className="panel" aria-labelledby="items-title">
          <h2 id="items-title">Items</h2>
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Product</th>
                <th scope="col">Qty</th>
                <th scope="col" className="num">Price</th>
              </tr>
            </thead>
            <tbody>
              {o.lines.map((l) => (
                <tr key={l.productId}>
                  <td>
                    <ProductName id={l.productId} />
                  </td>
                  <td>{l.quantity}</td>
                  <td className="num">{money(l.unitPriceMinor * l.quantity, cur)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row" colSpan={2}>
                  Total
                </th>
                <td className="num">
                  <strong>{money(o.total.amountMinor, cur)}</strong>
                </td>
              </tr>
              {o.refundedMinor > 0 && (
                <tr>
                  <th scope="row" colSpan={2}>
                    Refunded
                  </th>
                  <td className="num">{money(o.refundedMinor, cur)}</td>
                </tr>
              )}
            </tfoot>
          </table>
          {o.payment && (
            <p className="muted">
              Paid by {o.payment.cardBrand} ending {o.payment.cardLast4} ({o.payment.status.toLowerCase()})
            </p>
          )}
          {!["SHIPPED", "DELIVERED", "CANCELLED"].includes(st) && (
            <button
              type="button"
              disabled={cancelState.fetching}
              onClick={async () => {
                const r = await cancel({ o: o.id });
                if (r.error) setError(errorMessage(r.error));
                else refetch(r.data!.cancelOrder.version);
              }}
            >
              Cancel order
            </button>
          )}
          <Alert message={error} />
        </section>
        <section className="panel" aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          <ol className="timeline">
            {o.timeline.map((t) => (
              <li key={t.version}>
                <time dateTime={t.occurredAt}>{date(t.occurredAt)}</time> {t.summary}
              </li>
            ))}
          </ol>
        </section>
      </div>
      {st === "DELIVERED" && (
        <section className="panel" aria-labelledby="review-title">
          <h2 id="review-title">Review your items</h2>
          {o.lines.map((l) => (
            <ReviewForm key={l.productId} orderId={o.id} productId={l.productId} />
          ))}
        </section>
      )}
    </section>
  );
}

function ReviewForm({ orderId, productId }: { orderId: string; productId: string }) {
  const [rating, setRating] = useState(5);
  const [title, setTitle] = useState("");
  const [body, setBody] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const [state, review] = useMutation(
    `mutation($p: ID!, $o: ID!, $r: Int!, $t: String!, $b: String!) { reviewProduct(productId: $p, orderId: $o, rating: $r, title: $t, body: $b) { version } }`,
  );
  return (
    <form
      className="review-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const r = await review({ p: productId, o: orderId, r: rating, t: title, b: body });
        setDone(r.error ? errorMessage(r.error) : "Thank you for your review.");
      }}
    >
      <h3>
        <ProductName id={productId} />
      </h3>
      <div className="field">
        <label htmlFor={`rating-${productId}`}>Rating</label>
        <select id={`rating-${productId}`} value={rating} onChange={(e) => setRating(Number(e.target.value))}>
          {[5, 4, 3, 2, 1].map((n) => (
            <option key={n} value={n}>
              {n} star{n > 1 ? "s" : ""}
            </option>
          ))}
        </select>
      </div>
      <Field label="Title" name={`title-${productId}`} value={title} onChange={setTitle} maxLength={200} />
      <Field label="Your review" name={`body-${productId}`} value={body} onChange={setBody} maxLength={5000} multiline />
      <button type="submit" disabled={state.fetching}>
        Submit review
      </button>
      <Alert message={done} kind={done?.startsWith("Thank") ? "ok" : "error"} />
    </form>
  );
}
