//! `npm run screenshots`: fills the shop behind GRAPHQL_URL with a small catalogue, customers,
//! orders and reviews (through the API), then photographs the main pages of the storefront
//! and the back office into docs/screenshots/ (PNG). Run by `make screenshots`
//! (scripts/screenshots.sh), which gives it a fresh stack of its own.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_EMAIL, ADMIN_PASSWORD, GRAPHQL_URL, adminToken, cardToken, gql, launch, login, newPage, retrying, shortId } from "./lib.mjs";
import { WEB_DIR, serveApp } from "./serve.mjs";

const OUT = process.env.SCREENSHOTS_DIR ?? join(WEB_DIR, "..", "docs", "screenshots");
mkdirSync(OUT, { recursive: true });

const CATALOGUE = [
  ["Ethiopia Yirgacheffe Beans", "Kaffa Roasters", ["coffee"], 1450, 40, { roast: "light", origin: "Ethiopia", weight: "250 g" }, "Floral and bright, with notes of jasmine, bergamot and lemon."],
  ["Colombia Huila Beans", "Kaffa Roasters", ["coffee"], 1290, 35, { roast: "medium", origin: "Colombia", weight: "250 g" }, "Caramel sweetness and a round, nutty body."],
  ["Espresso Blend No. 5", "Kaffa Roasters", ["coffee"], 1190, 60, { roast: "dark", weight: "500 g" }, "Chocolate, toasted hazelnut and a long finish. Made for milk."],
  ["Decaf Swiss Water Beans", "Kaffa Roasters", ["coffee"], 1350, 0, { roast: "medium", weight: "250 g" }, "All of the taste, none of the caffeine."],
  ["Gooseneck Pour-Over Kettle", "Pourover Co", ["kitchen", "coffee"], 4990, 12, { colour: "matte black", volume: "1 l" }, "A precise, steady pour for filter coffee."],
  ["Ceramic V60 Dripper", "Hario", ["kitchen", "coffee"], 2400, 25, { colour: "white", size: "02" }, "The classic cone dripper, in porcelain."],
  ["Burr Hand Grinder", "Hario", ["kitchen", "coffee"], 6900, 8, { burrs: "steel", capacity: "30 g" }, "Uniform grounds from espresso to French press."],
  ["Stoneware Mug", "Field Pottery", ["kitchen"], 1800, 50, { colour: "sand", volume: "350 ml" }, "Thrown by hand, glazed inside and out."],
  ["Sencha Green Tea", "Leaf & Co", ["tea"], 990, 70, { origin: "Japan", weight: "100 g" }, "Grassy, sweet and fresh. Brew at 70 °C."],
  ["Earl Grey Loose Leaf", "Leaf & Co", ["tea"], 890, 45, { origin: "Sri Lanka", weight: "100 g" }, "Black tea with cold-pressed bergamot."],
  ["Cast Iron Teapot", "Leaf & Co", ["kitchen", "tea"], 5600, 6, { colour: "midnight", volume: "800 ml" }, "Keeps tea warm for an hour; enamelled inside."],
  ["Linen Tea Towel Set", "Field Pottery", ["kitchen"], 2200, 30, { pieces: "3", material: "linen" }, "Soft, absorbent and quick to dry."],
];

async function until(fn, what) {
  const end = Date.now() + 60000;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function customer(name, email) {
  const password = "correct horse battery";
  await gql(`mutation($e: String!, $p: String!, $n: String!) { register(email: $e, password: $p, name: $n) { id } }`, { e: email, p: password, n: name }).catch((e) => {
    if (e.code !== "ALREADY_EXISTS") throw e;
  });
  const token = await login(email, password);
  await retrying(() =>
    gql(`mutation($n: String!, $a: [AddressInput!]!) { updateProfile(name: $n, addresses: $a) { version } }`, { n: name, a: [{ line1: "12 Rue des Lilas", city: "Lyon", postalCode: "69003", country: "France" }] }, token),
  );
  return { email, password, token };
}

async function order(token, items, card = "4242424242424242") {
  const cart = (await retrying(() => gql(`mutation { createCart { cartId } }`, {}, token))).createCart.cartId;
  for (const [id, q] of items) await retrying(() => gql(`mutation($c: ID!, $p: ID!, $q: Int!) { addItemToCart(cartId: $c, productId: $p, quantity: $q) { version } }`, { c: cart, p: id, q }, token));
  const t = await cardToken(card);
  const d = await retrying(() => gql(`mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId } }`, { c: cart, t }, token));
  return d.checkout.orderId;
}

const statusOf = async (id, token) => (await gql(`query($id: ID!) { order(id: $id) { status } }`, { id }, token)).order.status;

async function seed() {
  const admin = await adminToken();
  const have = await gql(`{ products(first: 100) { edges { node { id name } } } }`);
  const ids = {};
  for (const { node } of have.products.edges) ids[node.name] = node.id;
  for (const [name, brand, categories, priceMinor, initialStock, attrs, description] of CATALOGUE) {
    if (ids[name]) continue;
    const d = await retrying(() =>
      gql(`mutation($i: ProductInput!) { createProduct(input: $i) { id } }`, {
        i: { name, brand, categories, priceMinor, currency: "EUR", initialStock, description, attributes: Object.entries(attrs).map(([key, value]) => ({ key, value })) },
      }, admin),
    );
    ids[name] = d.createProduct.id;
  }
  const first = (await gql(`{ orders(first: 1) { totalCount } }`, {}, admin).catch(() => ({ orders: { totalCount: 0 } }))).orders.totalCount;
  const ada = await customer("Ada Lovelace", "ada@example.com");
  if (first === 0) {
    // Delivered orders with reviews (ratings on the cards), and a few orders in each state.
    const reviewers = [ada, await customer("Grace Hopper", "grace@example.com"), await customer("Alan Turing", "alan@example.com")];
    const reviews = [
      ["Ethiopia Yirgacheffe Beans", [[5, "Like a cup of flowers", "Bright and clean; my new favourite for the V60."], [5, "Superb", "Fresh roast date, lovely acidity."], [4, "Very good", "A touch light for my taste, still excellent."]]],
      ["Gooseneck Pour-Over Kettle", [[5, "Perfect pour", "Steady and precise. Heats fast."], [4, "Great kettle", "Lid is a little loose."]]],
      ["Espresso Blend No. 5", [[4, "Chocolatey", "Great in a flat white."], [5, "Our house espresso", "Consistent, crema for days."]]],
      ["Sencha Green Tea", [[5, "Fresh and grassy", "Tastes like spring."]]],
      ["Stoneware Mug", [[4, "Lovely glaze", "Holds heat well."]]],
    ];
    for (let i = 0; i < reviewers.length; i++) {
      const c = reviewers[i];
      const mine = reviews.filter(([, rs]) => rs[i]);
      const o = await order(c.token, mine.map(([n]) => [ids[n], 1]));
      await until(async () => (await statusOf(o, admin)) === "CONFIRMED", "a confirmed order");
      await retrying(() => gql(`mutation($o: ID!) { shipOrder(orderId: $o, carrier: "DHL", trackingNumber: "JD0146${i}0") { version } }`, { o }, admin));
      await until(async () => (await statusOf(o, admin)) === "SHIPPED", "a shipped order");
      await retrying(() => gql(`mutation($o: ID!) { markDelivered(orderId: $o) { version } }`, { o }, admin));
      await until(async () => (await statusOf(o, admin)) === "DELIVERED", "a delivered order");
      for (const [n, rs] of mine) {
        const [r, t, b] = rs[i];
        await retrying(() => gql(`mutation($p: ID!, $o: ID!, $r: Int!, $t: String!, $b: String!) { reviewProduct(productId: $p, orderId: $o, rating: $r, title: $t, body: $b) { version } }`, { p: ids[n], o, r, t, b }, c.token));
      }
    }
    const o1 = await order(reviewers[1].token, [[ids["Burr Hand Grinder"], 1], [ids["Colombia Huila Beans"], 2]]);
    await until(async () => (await statusOf(o1, admin)) === "CONFIRMED", "a confirmed order");
    await retrying(() => gql(`mutation($o: ID!) { shipOrder(orderId: $o, carrier: "UPS", trackingNumber: "1Z999AA10123456784") { version } }`, { o: o1 }, admin));
    await order(reviewers[2].token, [[ids["Cast Iron Teapot"], 1], [ids["Earl Grey Loose Leaf"], 3]]);
    await order(reviewers[2].token, [[ids["Linen Tea Towel Set"], 1]], "4000000000000002");
  }
  return { ids, admin, ada };
}

const { ids, ada } = await seed();
const { base, stop } = await serveApp(GRAPHQL_URL);
const browser = await launch();
const shot = async (page, name, full = false) => {
  await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: full });
  console.log(`[screenshots] ${name}.png`);
};
const signIn = async (page, email, password) => {
  const r = await gql(`mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken userId role } }`, { e: email, p: password });
  await page.goto(`${base}/`);
  await page.evaluate(([s, email]) => localStorage.setItem("commerce.session", JSON.stringify({ ...s, email })), [r.login, email]);
};

try {
  // Storefront, desktop.
  let page = await newPage(browser, { width: 1280, height: 860 });
  await page.goto(`${base}/`);
  await page.getByText("Ethiopia Yirgacheffe Beans").waitFor();
  await shot(page, "store-home");
  await page.goto(`${base}/?q=coffee&sort=RATING&inStock=1`);
  await page.getByRole("heading", { name: "Results for “coffee”" }).waitFor();
  await page.getByText("Gooseneck Pour-Over Kettle").waitFor();
  await shot(page, "store-search");
  await page.goto(`${base}/products/${ids["Ethiopia Yirgacheffe Beans"]}`);
  await page.getByText("Like a cup of flowers").waitFor();
  await shot(page, "store-product", true);

  // A signed-in customer's cart, checkout and order.
  await signIn(page, ada.email, ada.password);
  await page.goto(`${base}/products/${ids["Gooseneck Pour-Over Kettle"]}`);
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.getByTestId("cart-count").filter({ hasText: /^1$/ }).waitFor();
  await page.goto(`${base}/products/${ids["Espresso Blend No. 5"]}`);
  await page.getByLabel("Quantity").selectOption("2");
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.getByTestId("cart-count").filter({ hasText: /^3$/ }).waitFor();
  await page.goto(`${base}/cart`);
  await page.getByTestId("cart-total").filter({ hasText: "€73.70" }).waitFor();
  await shot(page, "store-cart");
  await page.getByRole("button", { name: "Checkout" }).click();
  await page.getByLabel("Card number").fill("4242 4242 4242 4242");
  await page.getByLabel("Expiry (MM/YY)").fill("11/34");
  await page.getByLabel("CVC").fill("123");
  await shot(page, "store-checkout");
  await page.getByRole("button", { name: "Place order" }).click();
  await page.getByTestId("order-status").filter({ hasText: "Confirmed" }).waitFor({ timeout: 60000 });
  await page.getByRole("link", { name: "Gooseneck Pour-Over Kettle" }).waitFor();
  await shot(page, "store-order", true);
  await page.goto(`${base}/account/orders`);
  await page.getByRole("heading", { name: "Your orders" }).waitFor();
  await page.getByRole("cell", { name: "Delivered" }).waitFor();
  await shot(page, "store-my-orders");
  await page.context().close();

  // The storefront on a phone.
  page = await newPage(browser, { width: 390, height: 844, isMobile: true, hasTouch: true });
  await page.goto(`${base}/`);
  await page.getByText("Ethiopia Yirgacheffe Beans").waitFor();
  await shot(page, "phone-home");
  await page.goto(`${base}/products/${ids["Burr Hand Grinder"]}`);
  await page.getByRole("button", { name: "Add to cart" }).waitFor();
  await shot(page, "phone-product");
  await page.context().close();

  // The back office: orders with the live feed, an order, products, a product.
  page = await newPage(browser, { width: 1280, height: 860 });
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await page.goto(`${base}/admin`);
  await page.getByText("Orders placed from now on appear here.").waitFor();
  const grace = await login("grace@example.com", "correct horse battery");
  const live = await order(grace, [[ids["Ceramic V60 Dripper"], 1], [ids["Sencha Green Tea"], 2]]);
  await page.getByRole("list", { name: "New orders" }).getByRole("link", { name: shortId(live) }).waitFor();
  await page.getByRole("cell", { name: shortId(live) }).waitFor();
  await shot(page, "admin-orders");
  await page.goto(`${base}/admin/orders/${live}`);
  await page.getByTestId("order-status").filter({ hasText: "Confirmed" }).waitFor({ timeout: 60000 });
  await page.getByLabel("Carrier").fill("DHL");
  await page.getByLabel("Tracking number").fill("JD014600");
  await shot(page, "admin-order", true);
  await page.goto(`${base}/admin/products`);
  await page.getByRole("link", { name: "Linen Tea Towel Set" }).waitFor();
  await shot(page, "admin-products");
  await page.goto(`${base}/admin/products/${ids["Burr Hand Grinder"]}`);
  await page.getByText("On hand").waitFor();
  await shot(page, "admin-product");
  await page.context().close();
} finally {
  await browser.close();
  stop();
}
