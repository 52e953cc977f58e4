// Checkout: the delivery address (kept in the customer's profile, which is where the API
// keeps addresses) and the card, which goes to the payment gateway's tokenization endpoint
// (never to the GraphQL API), then checkout with the token; then the order page.
import { useEffect, useState, type FormEvent } from "react";
import { Link, Navigate, useNavigate } from "react-router-dom";
import { useClient, useQuery } from "urql";
import { errorMessage, tokenizeCard } from "../client";
import { useCart } from "../cart";
import { money } from "../format";
import { useSession } from "../session";
import { Alert, Field, Loading, Title } from "../ui";

interface Address {
  line1: string;
  line2: string;
  city: string;
  postalCode: string;
  country: string;
}
const EMPTY: Address = { line1: "", line2: "", city: "", postalCode: "", country: "" };

export const ME = `query Me { me { id email name role version addresses { line1 line2 city postalCode country } } }`;
export interface MeData {
  me: { id: string; email: string; name: string; role: string; version: number; addresses: Address[] };
}

export function CheckoutPage() {
  const session = useSession();
  const { cart, total } = useCart();
  const client = useClient();
  const navigate = useNavigate();
  const [me] = useQuery<MeData>({ query: ME, pause: !session.accessToken });
  const [addr, setAddr] = useState<Address>(EMPTY);
  const [card, setCard] = useState({ number: "", exp: "", cvc: "" });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const a = me.data?.me.addresses[0];
    if (a) setAddr(a);
  }, [me.data]);

  if (!session.accessToken) return <Navigate to="/login?next=/checkout" replace />;
  if (!cart || cart.lines.length === 0)
    return (
      <section className="panel narrow">
        <Title>Checkout</Title>
        <p>
          Your cart is empty. <Link to="/">Back to the shop</Link>
        </p>
      </section>
    );
  if (!me.data) return me.error ? <Alert message={errorMessage(me.error)} /> : <Loading />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const m = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(card.exp);
    if (!m) return setError("Enter the expiry date as MM/YY.");
    const expMonth = Number(m[1]);
    const expYear = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
    setBusy(true);
    try {
      const saved = me.data!.me.addresses[0];
      const a = { ...addr, line2: addr.line2 ?? "" };
      if (!saved || JSON.stringify(saved) !== JSON.stringify(a)) {
        const rest = me.data!.me.addresses.slice(1);
        const u = await client
          .mutation(`mutation($n: String!, $a: [AddressInput!]!) { updateProfile(name: $n, addresses: $a) { version } }`, {
            n: me.data!.me.name,
            a: [a, ...rest].slice(0, 10),
          })
          .toPromise();
        if (u.error) return setError(errorMessage(u.error));
      }
      const t = await tokenizeCard({ number: card.number.replace(/[\s-]+/g, ""), expMonth, expYear, cvc: card.cvc.trim() });
      if ("error" in t) return setError(t.error);
      const r = await client
        .mutation<{ checkout: { orderId: string } }>(
          `mutation($c: ID!, $t: String!, $k: String) { checkout(cartId: $c, paymentToken: $t, idempotencyKey: $k) { orderId cartVersion } }`,
          { c: cart.id, t: t.token, k: `checkout-${cart.id}-${cart.version}` },
        )
        .toPromise();
      if (r.error || !r.data) return setError(errorMessage(r.error) ?? "Checkout failed.");
      navigate(`/orders/${r.data.checkout.orderId}`);
    } finally {
      setBusy(false);
    }
  };

  const set = (k: keyof Address) => (v: string) => setAddr({ ...addr, [k]: v });
  return (
    <section className="checkout">
      <Title>Checkout</Title>
      <form onSubmit={submit} className="checkout-layout">
        <div>
          <fieldset className="panel">
            <legend>Delivery address</legend>
            <Field label="Address" name="line1" value={addr.line1} onChange={set("line1")} required autoComplete="address-line1" maxLength={200} />
            <Field label="Address line 2 (optional)" name="line2" value={addr.line2} onChange={set("line2")} autoComplete="address-line2" maxLength={200} />
            <div className="field-row">
              <Field label="City" name="city" value={addr.city} onChange={set("city")} required autoComplete="address-level2" maxLength={100} />
              <Field label="Postcode" name="postalCode" value={addr.postalCode} onChange={set("postalCode")} required autoComplete="postal-code" maxLength={20} />
            </div>
            <Field label="Country" name="country" value={addr.country} onChange={set("country")} required autoComplete="country-name" maxLength={100} />
          </fieldset>
          <fieldset className="panel">
            <legend>Payment</legend>
            <Field
              label="Card number"
              name="cardNumber"
              value={card.number}
              onChange={(v) => setCard({ ...card, number: v })}
              required
              autoComplete="cc-number"
              inputMode="numeric"
              maxLength={23}
              hint="Test cards: 4242 4242 4242 4242 is approved, 4000 0000 0000 0002 is declined."
            />
            <div className="field-row">
              <Field label="Expiry (MM/YY)" name="exp" value={card.exp} onChange={(v) => setCard({ ...card, exp: v })} required autoComplete="cc-exp" maxLength={7} />
              <Field label="CVC" name="cvc" value={card.cvc} onChange={(v) => setCard({ ...card, cvc: v })} required autoComplete="cc-csc" inputMode="numeric" maxLength={4} />
            </div>
          </fieldset>
        </div>
        <aside className="summary panel" aria-labelledby="pay-title">
          <h2 id="pay-title">Order summary</h2>
          <p className="summary-row">
            <span>Items</span>
            <span>{cart.itemCount}</span>
          </p>
          <p className="summary-row total">
            <span>Total</span>
            <strong>{total ? money(total.amountMinor, total.currency) : "…"}</strong>
          </p>
          <Alert message={error} />
          <button type="submit" className="primary wide" disabled={busy}>
            {busy ? "Placing your order…" : "Place order"}
          </button>
        </aside>
      </form>
    </section>
  );
}
