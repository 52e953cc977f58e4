//! Shared pieces of the browser tests: the API (GRAPHQL_URL), the app's address
//! (WEB_BASE_URL), Debian's Chromium driven by playwright-core, and API helpers that set up
//! what a journey needs (an admin's token, a product, a placed order).
import { chromium } from "playwright-core";
import { randomUUID } from "node:crypto";

export const GRAPHQL_URL = process.env.GRAPHQL_URL ?? "http://127.0.0.1:8080/graphql";
export const BASE_URL = (process.env.WEB_BASE_URL ?? new URL("/", GRAPHQL_URL).href).replace(/\/$/, "");
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL ?? "admin@example.com";
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD ?? "";
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/// How long a journey waits for what the user should see (a checkout crosses the saga).
export const DEADLINE_MS = Number(process.env.WEB_TEST_DEADLINE_MS ?? 30000);

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/// A page in a context of its own; `device` is a viewport, optionally with `hasTouch`,
/// `isMobile` (a phone).
export async function newPage(browser, device = { width: 1280, height: 900 }) {
  const { hasTouch = false, isMobile = false, ...viewport } = device;
  const context = await browser.newContext({ viewport, hasTouch, isMobile, locale: "en-GB" });
  context.setDefaultTimeout(DEADLINE_MS);
  context.setDefaultNavigationTimeout(DEADLINE_MS);
  return context.newPage();
}

/// One GraphQL call; throws on errors, with their codes.
export async function gql(query, variables = {}, token) {
  const res = await fetch(GRAPHQL_URL, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors?.length) {
    const e = new Error(body.errors.map((x) => `${x.extensions?.code}: ${x.message}`).join("; "));
    e.code = body.errors[0].extensions?.code;
    throw e;
  }
  return body.data;
}

/// Retries what may meet a busy backend (UNAVAILABLE, CONFLICT, STALE), until the deadline.
export async function retrying(fn) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!["UNAVAILABLE", "CONFLICT", "STALE"].includes(e.code) || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function login(email, password) {
  const d = await retrying(() =>
    gql(`mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken userId role } }`, { e: email, p: password }),
  );
  return d.login.accessToken;
}

export async function adminToken() {
  if (!ADMIN_PASSWORD) throw new Error("ADMIN_PASSWORD is not set (source the stack's stack.env)");
  return login(ADMIN_EMAIL, ADMIN_PASSWORD);
}

/// An order's reference as the pages show it (as src/format.ts `shortId`).
export function shortId(id) {
  return id.replace(/-/g, "").slice(-8).toUpperCase();
}

/// A word no other product has, so a search finds exactly what a test made.
export function uniqueWord(prefix) {
  return `${prefix}${randomUUID().replace(/-/g, "").slice(0, 8)}`;
}

export async function createProduct(token, input) {
  const d = await retrying(() =>
    gql(`mutation($i: ProductInput!, $k: String) { createProduct(input: $i, idempotencyKey: $k) { id } }`, { i: input, k: `web-${input.name}` }, token),
  );
  return d.createProduct.id;
}

/// A new customer, signed in: their token.
export async function newCustomer(name = "Test Customer") {
  const email = `${uniqueWord("web")}@example.com`;
  const password = "correct horse battery";
  await retrying(() => gql(`mutation($e: String!, $p: String!, $n: String!) { register(email: $e, password: $p, name: $n) { id } }`, { e: email, p: password, n: name }));
  return { email, password, token: await login(email, password) };
}

/// A card's token from the payment gateway's tokenization endpoint (beside the API).
export async function cardToken(number = "4242424242424242") {
  const res = await fetch(new URL("/pay/v1/tokens", GRAPHQL_URL), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ number, exp_month: 12, exp_year: 2035, cvc: "123" }),
  });
  const body = await res.json();
  if (res.status !== 201 || !body.token) throw new Error(`tokenization answered ${res.status}: ${JSON.stringify(body)}`);
  return body.token;
}

/// A customer's checkout of one product, through the API: the order's id.
export async function placeOrder(token, productId, quantity = 1) {
  const cart = (await retrying(() => gql(`mutation { createCart { cartId } }`, {}, token))).createCart.cartId;
  await retrying(() => gql(`mutation($c: ID!, $p: ID!, $q: Int!) { addItemToCart(cartId: $c, productId: $p, quantity: $q) { version } }`, { c: cart, p: productId, q: quantity }, token));
  const t = await cardToken();
  const d = await retrying(() =>
    gql(`mutation($c: ID!, $t: String!, $k: String) { checkout(cartId: $c, paymentToken: $t, idempotencyKey: $k) { orderId } }`, { c: cart, t, k: `web-${cart}` }, token),
  );
  return d.checkout.orderId;
}

/// Runs a journey in a fresh page; on failure keeps a screenshot and the page's text in
/// tests/output/ (what the user saw), then fails.
export async function journey(browser, name, fn, device) {
  const page = await newPage(browser, device);
  const seen = [];
  page.on("pageerror", (e) => seen.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && seen.push(`console: ${m.text()}`));
  try {
    await fn(page);
  } catch (e) {
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const dir = new URL("./output/", import.meta.url);
    mkdirSync(dir, { recursive: true });
    const file = name.replace(/[^a-z0-9]+/gi, "-");
    await page.screenshot({ path: new URL(`${file}.png`, dir).pathname, fullPage: true }).catch(() => {});
    const text = await page.innerText("body").catch(() => "");
    writeFileSync(new URL(`${file}.txt`, dir), `${page.url()}\n\n${text}\n\n${seen.join("\n")}\n`);
    throw e;
  } finally {
    await page.context().close();
  }
}
