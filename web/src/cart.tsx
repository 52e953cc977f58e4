// The shopper's cart, live: the current cart from the query service, then every change pushed
// by the `cartChanged` subscription. Prices come from the catalogue (one aliased query for all
// lines), so the total is recomputed as soon as a change arrives.
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { useClient, useQuery, useSubscription } from "urql";
import { getSession, setSession, useSession } from "./session";
import { errorCode } from "./client";
import type { CartStatus } from "./format";

export interface CartLine {
  productId: string;
  quantity: number;
}
export interface Cart {
  id: string;
  status: CartStatus;
  version: number;
  itemCount: number;
  lines: CartLine[];
}
export interface LineProduct {
  id: string;
  name: string;
  price: { amountMinor: number; currency: string };
  stock: { available: number };
  brand: { name: string } | null;
  categories: string[];
}

const CART_FIELDS = "id status version itemCount lines { productId quantity }";
const CART_QUERY = `query Cart($id: ID!, $v: Int) { cart(id: $id, atLeastVersion: $v) { ${CART_FIELDS} } }`;
const CART_SUB = `subscription CartChanged($id: ID!) { cartChanged(cartId: $id) { ${CART_FIELDS} } }`;

interface CartState {
  cart: Cart | null;
  products: Record<string, LineProduct>;
  total: { amountMinor: number; currency: string } | null;
  ensureCart: () => Promise<string>;
  /// Applies a mutation's result at once (read-your-writes), before the subscription says so.
  refresh: (version: number) => void;
  forgetCart: () => void;
}

const Ctx = createContext<CartState | null>(null);

function productsQuery(ids: string[]): string {
  const fields = "id name price { amountMinor currency } stock { available } brand { name } categories";
  const body = ids.map((id, i) => `p${i}: product(id: ${JSON.stringify(id)}) { ${fields} }`).join("\n");
  return `query CartProducts { ${body} }`;
}

export function CartProvider({ children }: { children: ReactNode }) {
  const session = useSession();
  const client = useClient();
  const cartId = session.cartId;
  const [cart, setCart] = useState<Cart | null>(null);
  const [minVersion, setMinVersion] = useState<number | undefined>(undefined);

  useEffect(() => {
    setCart(null);
    setMinVersion(undefined);
  }, [cartId]);

  const [queried] = useQuery<{ cart: Cart | null }>({
    query: CART_QUERY,
    variables: { id: cartId, v: minVersion },
    pause: !cartId,
    requestPolicy: "network-only",
  });
  const [live] = useSubscription<{ cartChanged: Cart }>({
    query: CART_SUB,
    variables: { id: cartId },
    pause: !cartId,
  });

  // Whichever is newer wins: the query (after our own write) or the subscription.
  useEffect(() => {
    for (const c of [queried.data?.cart, live.data?.cartChanged]) {
      if (c && c.id === cartId) setCart((old) => (old && old.id === c.id && old.version >= c.version ? old : c));
    }
  }, [queried.data, live.data, cartId]);

  // A cart that is not ours (any more) is forgotten; one not found may just not be projected
  // yet (the subscription waits for it), or be gone: adding to it says which (`forgetCart`).
  useEffect(() => {
    if (errorCode(queried.error) === "FORBIDDEN") setSession({ cartId: undefined });
  }, [queried.error]);
  useEffect(() => {
    if (cart?.status === "CHECKED_OUT" && getSession().cartId === cart.id) setSession({ cartId: undefined });
  }, [cart]);

  const ids = useMemo(() => (cart?.lines ?? []).map((l) => l.productId).sort(), [cart]);
  const [prods] = useQuery<Record<string, LineProduct>>({
    query: ids.length ? productsQuery(ids) : "query None { __typename }",
    pause: ids.length === 0,
  });
  const products = useMemo(() => {
    const out: Record<string, LineProduct> = {};
    if (ids.length && prods.data) for (const p of Object.values(prods.data)) if (p && typeof p === "object" && "id" in p) out[p.id] = p;
    return out;
  }, [prods.data, ids]);

  const total = useMemo(() => {
    if (!cart || cart.lines.length === 0) return null;
    let sum = 0;
    let currency = "";
    for (const l of cart.lines) {
      const p = products[l.productId];
      if (!p) return null;
      sum += p.price.amountMinor * l.quantity;
      currency = p.price.currency;
    }
    return { amountMinor: sum, currency };
  }, [cart, products]);

  const value: CartState = {
    cart: cart && cart.id === cartId ? cart : null,
    products,
    total,
    refresh: (v) => setMinVersion(v),
    forgetCart: () => setSession({ cartId: undefined }),
    ensureCart: async () => {
      const existing = getSession().cartId;
      if (existing) return existing;
      const r = await client
        .mutation<{ createCart: { cartId: string; version: number } }>(
          "mutation { createCart { cartId version } }",
          {},
        )
        .toPromise();
      if (!r.data) throw r.error ?? new Error("no cart");
      setSession({ cartId: r.data.createCart.cartId });
      return r.data.createCart.cartId;
    },
  };
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useCart(): CartState {
  const c = useContext(Ctx);
  if (!c) throw new Error("useCart outside CartProvider");
  return c;
}
