// The cart: its lines with quantities, removal, and the total, all live (the `cartChanged`
// subscription pushes every change, also those made in another tab).
import { Link, useNavigate } from "react-router-dom";
import { useMutation } from "urql";
import { useState } from "react";
import { errorMessage } from "../client";
import { useCart } from "../cart";
import { money } from "../format";
import { ProductArt } from "../art";
import { Alert, Empty, Title } from "../ui";
import { useSession } from "../session";

export function CartPage() {
  const { cart, products, total, refresh } = useCart();
  const session = useSession();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  const [, change] = useMutation(`mutation($c: ID!, $p: ID!, $q: Int!) { changeCartItemQuantity(cartId: $c, productId: $p, quantity: $q) { version } }`);
  const [, remove] = useMutation(`mutation($c: ID!, $p: ID!) { removeItemFromCart(cartId: $c, productId: $p) { version } }`);

  const run = async (p: Promise<{ error?: unknown; data?: Record<string, { version: number }> }>) => {
    const r = await p;
    if (r.error) setError(errorMessage(r.error as never));
    else {
      setError(null);
      const v = Object.values(r.data ?? {})[0]?.version;
      if (v) refresh(v);
    }
  };

  if (!cart || cart.lines.length === 0)
    return (
      <section className="panel narrow">
        <Title>Your cart</Title>
        <Empty>
          Your cart is empty. <Link to="/">Find something you like</Link>.
        </Empty>
      </section>
    );

  return (
    <section className="cart-page">
      <Title>Your cart</Title>
      <Alert message={error} />
      <div className="cart-layout">
        <ul className="cart-lines panel" aria-label="Items in your cart">
          {cart.lines.map((l) => {
            const p = products[l.productId];
            const name = p?.name ?? "…";
            return (
              <li key={l.productId} className="cart-line">
                <ProductArt name={name} size="thumb" />
                <div className="cart-line-info">
                  <Link to={`/products/${l.productId}`}>{name}</Link>
                  {p && <span className="muted">{money(p.price.amountMinor, p.price.currency)} each</span>}
                </div>
                <label className="sr-only" htmlFor={`q-${l.productId}`}>
                  Quantity of {name}
                </label>
                <select
                  id={`q-${l.productId}`}
                  value={l.quantity}
                  onChange={(e) => run(change({ c: cart.id, p: l.productId, q: Number(e.target.value) }))}
                >
                  {Array.from({ length: Math.max(10, l.quantity) }, (_, i) => i + 1).map((n) => (
                    <option key={n}>{n}</option>
                  ))}
                </select>
                <span className="line-total">{p ? money(p.price.amountMinor * l.quantity, p.price.currency) : ""}</span>
                <button type="button" className="link" onClick={() => run(remove({ c: cart.id, p: l.productId }))} aria-label={`Remove ${name}`}>
                  Remove
                </button>
              </li>
            );
          })}
        </ul>
        <aside className="summary panel" aria-labelledby="summary-title">
          <h2 id="summary-title">Summary</h2>
          <p className="summary-row">
            <span>Items</span>
            <span>{cart.itemCount}</span>
          </p>
          <p className="summary-row total" aria-live="polite">
            <span>Total</span>
            <strong data-testid="cart-total">{total ? money(total.amountMinor, total.currency) : "…"}</strong>
          </p>
          <button type="button" className="primary wide" onClick={() => navigate(session.accessToken ? "/checkout" : "/login?next=/checkout")}>
            {session.accessToken ? "Checkout" : "Sign in to check out"}
          </button>
        </aside>
      </div>
    </section>
  );
}
