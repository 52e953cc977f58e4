// The customer's account: profile and addresses, password, signing out, and their orders.
import { useEffect, useState, type FormEvent } from "react";
import { Link, Navigate, useNavigate, useSearchParams } from "react-router-dom";
import { useMutation, useQuery } from "urql";
import { errorMessage } from "../client";
import { date, money, shortId, status, type DateTime, type OrderStatus } from "../format";
import { useSession } from "../session";
import { Alert, Empty, Field, Loading, Title, useLogout } from "../ui";
import { ME, type MeData } from "./CheckoutPage";

export function AccountPage() {
  const session = useSession();
  const navigate = useNavigate();
  const logout = useLogout();
  const [me, refetch] = useQuery<MeData>({ query: ME, pause: !session.accessToken, requestPolicy: "network-only" });
  const [name, setName] = useState("");
  const [addr, setAddr] = useState({ line1: "", line2: "", city: "", postalCode: "", country: "" });
  const [msg, setMsg] = useState<{ text: string; ok: boolean } | null>(null);
  const [pw, setPw] = useState({ current: "", next: "" });
  const [pwMsg, setPwMsg] = useState<{ text: string; ok: boolean } | null>(null);
  const [, update] = useMutation(`mutation($n: String!, $a: [AddressInput!]!) { updateProfile(name: $n, addresses: $a) { version } }`);
  const [, changePw] = useMutation(`mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`);
  useEffect(() => {
    if (!me.data) return;
    setName(me.data.me.name);
    if (me.data.me.addresses[0]) setAddr(me.data.me.addresses[0]);
  }, [me.data]);
  if (!session.accessToken) return <Navigate to="/login?next=/account" replace />;
  if (!me.data) return me.error ? <Alert message={errorMessage(me.error)} /> : <Loading />;

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const hasAddr = addr.line1 || addr.city || addr.postalCode || addr.country;
    const r = await update({ n: name, a: hasAddr ? [addr, ...me.data!.me.addresses.slice(1)] : me.data!.me.addresses.slice(1) });
    setMsg(r.error ? { text: errorMessage(r.error) ?? "Not saved.", ok: false } : { text: "Your profile is saved.", ok: true });
    if (!r.error) refetch({ requestPolicy: "network-only" });
  };
  const savePw = async (e: FormEvent) => {
    e.preventDefault();
    const r = await changePw({ c: pw.current, n: pw.next });
    setPwMsg(r.error ? { text: errorMessage(r.error) ?? "Not changed.", ok: false } : { text: "Your password is changed.", ok: true });
    if (!r.error) setPw({ current: "", next: "" });
  };
  const set = (k: keyof typeof addr) => (v: string) => setAddr({ ...addr, [k]: v });
  return (
    <section className="account">
      <Title>Your account</Title>
      <p>
        Signed in as <strong>{me.data.me.email}</strong>. <Link to="/account/orders">Your orders</Link>
      </p>
      <div className="account-layout">
        <form className="panel" onSubmit={save} aria-labelledby="profile-title">
          <h2 id="profile-title">Profile</h2>
          <Field label="Name" name="name" value={name} onChange={setName} required maxLength={200} autoComplete="name" />
          <fieldset>
            <legend>Delivery address</legend>
            <Field label="Address" name="line1" value={addr.line1} onChange={set("line1")} maxLength={200} autoComplete="address-line1" />
            <Field label="Address line 2" name="line2" value={addr.line2} onChange={set("line2")} maxLength={200} autoComplete="address-line2" />
            <div className="field-row">
              <Field label="City" name="city" value={addr.city} onChange={set("city")} maxLength={100} autoComplete="address-level2" />
              <Field label="Postcode" name="postalCode" value={addr.postalCode} onChange={set("postalCode")} maxLength={20} autoComplete="postal-code" />
            </div>
            <Field label="Country" name="country" value={addr.country} onChange={set("country")} maxLength={100} autoComplete="country-name" />
          </fieldset>
          <Alert message={msg?.text} kind={msg?.ok ? "ok" : "error"} />
          <button type="submit" className="primary">
            Save profile
          </button>
        </form>
        <div>
          <form className="panel" onSubmit={savePw} aria-labelledby="pw-title">
            <h2 id="pw-title">Password</h2>
            <Field label="Current password" name="current" type="password" value={pw.current} onChange={(v) => setPw({ ...pw, current: v })} required autoComplete="current-password" />
            <Field label="New password" name="new" type="password" value={pw.next} onChange={(v) => setPw({ ...pw, next: v })} required autoComplete="new-password" />
            <Alert message={pwMsg?.text} kind={pwMsg?.ok ? "ok" : "error"} />
            <button type="submit">Change password</button>
          </form>
          <div className="panel">
            <h2>Sign out</h2>
            <button
              type="button"
              onClick={async () => {
                await logout();
                navigate("/");
              }}
            >
              Sign out
            </button>
          </div>
        </div>
      </div>
    </section>
  );
}

export const ORDERS_FIELDS = `totalCount pageInfo { hasNextPage endCursor } edges { node { id customerId status placedAt total { amountMinor currency } lines { quantity } } }`;
export interface OrdersPage {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { node: { id: string; customerId: string; status: OrderStatus; placedAt: DateTime; total: { amountMinor: number; currency: string }; lines: { quantity: number }[] } }[];
}

export function MyOrdersPage() {
  const session = useSession();
  const [params, setParams] = useSearchParams();
  const after = params.get("after") ?? undefined;
  const [res] = useQuery<{ myOrders: OrdersPage }>({
    query: `query($after: String) { myOrders(first: 10, after: $after) { ${ORDERS_FIELDS} } }`,
    variables: { after },
    pause: !session.accessToken,
    requestPolicy: "network-only",
  });
  if (!session.accessToken) return <Navigate to="/login?next=/account/orders" replace />;
  const data = res.data?.myOrders;
  return (
    <section>
      <Title>Your orders</Title>
      <Alert message={errorMessage(res.error)} />
      {!data && <Loading />}
      {data && data.edges.length === 0 && (
        <Empty>
          No orders yet. <Link to="/">Start shopping</Link>
        </Empty>
      )}
      {data && data.edges.length > 0 && (
        <div className="panel">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Order</th>
                <th scope="col">Placed</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">Total</th>
              </tr>
            </thead>
            <tbody>
              {data.edges.map(({ node: o }) => (
                <tr key={o.id}>
                  <td>
                    <Link to={`/orders/${o.id}`}>{shortId(o.id)}</Link>
                  </td>
                  <td>{date(o.placedAt)}</td>
                  <td>
                    <span className={`pill pill-${o.status.toLowerCase()}`}>{status(o.status)}</span>
                  </td>
                  <td className="num">{money(o.total.amountMinor, o.total.currency)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav aria-label="Pages" className="pager">
            {after && (
              <button type="button" onClick={() => setParams({})}>
                ← Newest
              </button>
            )}
            {data.pageInfo.hasNextPage && (
              <button type="button" onClick={() => setParams({ after: data.pageInfo.endCursor ?? "" })}>
                Older →
              </button>
            )}
          </nav>
        </div>
      )}
    </section>
  );
}
