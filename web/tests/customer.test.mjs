//! A customer's journey in the storefront: registers, searches, opens a product, adds it to
//! the cart and sees the total, sees the total follow a change made elsewhere (the
//! `cartChanged` subscription), checks out with a card, and watches the order page's status
//! become Confirmed; then finds the order under their orders and signs out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, adminToken, createProduct, gql, launch, journey, retrying, uniqueWord, shortId } from "./lib.mjs";

let browser;
let word;
let productName;

before(async () => {
  browser = await launch();
  const admin = await adminToken();
  word = uniqueWord("Tamper");
  productName = `${word} Espresso Beans`;
  await createProduct(admin, {
    name: productName,
    description: "Dark roast, notes of cocoa.",
    brand: "Roastery",
    categories: ["coffee"],
    attributes: [{ key: "roast", value: "dark" }],
    priceMinor: 1250,
    currency: "EUR",
    initialStock: 20,
  });
});

after(async () => {
  await browser?.close();
});

test("a customer registers, shops, checks out and sees the order confirmed", () =>
  journey(browser, "a customer registers, shops, checks out and sees the order confirmed", async (page) => {
    const email = `${uniqueWord("shopper")}@example.com`;

    await page.goto(`${BASE_URL}/register`);
    await page.getByLabel("Name").fill("Ada Shopper");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("link", { name: "Account" }).waitFor();

    // Search from the header; the product is found by the word only it has.
    await page.getByRole("searchbox", { name: "Search products" }).fill(word);
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByRole("heading", { name: `Results for “${word}”` }).waitFor();
    await page.getByText("1 product", { exact: true }).waitFor();
    await page.getByRole("link", { name: new RegExp(productName) }).click();

    await page.getByRole("heading", { level: 1, name: productName }).waitFor();
    await page.getByText("€12.50").first().waitFor();
    await page.getByText("20 in stock").waitFor();
    await page.getByLabel("Quantity").selectOption("2");
    await page.getByRole("button", { name: "Add to cart" }).click();
    await page.getByText(`Added 2 × ${productName} to your cart.`).waitFor();
    await page.getByTestId("cart-count").filter({ hasText: /^2$/ }).waitFor();

    await page.getByRole("link", { name: "View your cart" }).click();
    await page.getByRole("heading", { name: "Your cart" }).waitFor();
    await page.getByTestId("cart-total").filter({ hasText: "€25.00" }).waitFor();

    // A change made elsewhere (another tab, another device: here the API with the same
    // session) reaches the open page through the subscription, without a reload.
    const session = await page.evaluate(() => JSON.parse(localStorage.getItem("commerce.session") ?? "{}"));
    assert.ok(session.cartId, "the page keeps its cart id");
    const products = await gql(`query($q: String) { products(query: $q, first: 1) { edges { node { id } } } }`, { q: word });
    const productId = products.products.edges[0].node.id;
    await retrying(() =>
      gql(`mutation($c: ID!, $p: ID!) { changeCartItemQuantity(cartId: $c, productId: $p, quantity: 3) { version } }`, { c: session.cartId, p: productId }, session.accessToken),
    );
    await page.getByTestId("cart-total").filter({ hasText: "€37.50" }).waitFor();
    await page.getByTestId("cart-count").filter({ hasText: /^3$/ }).waitFor();

    await page.getByRole("button", { name: "Checkout" }).click();
    await page.getByRole("heading", { name: "Checkout" }).waitFor();
    await page.getByLabel("Address", { exact: true }).fill("1 Market Street");
    await page.getByLabel("City").fill("Lyon");
    await page.getByLabel("Postcode").fill("69001");
    await page.getByLabel("Country").fill("France");
    await page.getByLabel("Card number").fill("4242 4242 4242 4242");
    await page.getByLabel("Expiry (MM/YY)").fill("12/35");
    await page.getByLabel("CVC").fill("123");
    await page.getByRole("button", { name: "Place order" }).click();

    await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
    const orderId = page.url().split("/").pop();
    await page.getByTestId("order-status").filter({ hasText: "Confirmed" }).waitFor();
    await page.getByRole("row", { name: /Total.*€37\.50/ }).waitFor();
    await page.getByRole("link", { name: productName }).waitFor();

    // The cart is gone, the order is listed.
    await page.getByTestId("cart-count").filter({ hasText: /^0$/ }).waitFor();
    await page.getByRole("link", { name: "Orders", exact: true }).click();
    await page.getByRole("heading", { name: "Your orders" }).waitFor();
    await page.getByRole("link", { name: shortId(orderId) }).waitFor();

    // The address given at checkout is in the profile; signing out ends the session.
    await page.getByRole("link", { name: "Account", exact: true }).click();
    await page.getByText(`Signed in as ${email}`).waitFor();
    assert.equal(await page.getByLabel("City").inputValue(), "Lyon");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in" }).waitFor();
  }));

test("a declined card leaves the order cancelled with the reason shown", () =>
  journey(browser, "a declined card leaves the order cancelled with the reason shown", async (page) => {
    await page.goto(`${BASE_URL}/register`);
    await page.getByLabel("Name").fill("Bob Declined");
    await page.getByLabel("Email").fill(`${uniqueWord("declined")}@example.com`);
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("link", { name: "Account" }).waitFor();
    await page.goto(`${BASE_URL}/?q=${encodeURIComponent(word)}`);
    await page.getByRole("link", { name: new RegExp(productName) }).click();
    await page.getByRole("button", { name: "Add to cart" }).click();
    await page.getByTestId("cart-count").filter({ hasText: /^1$/ }).waitFor();
    await page.getByRole("link", { name: /^Cart/ }).click();
    await page.getByRole("button", { name: "Checkout" }).click();
    await page.getByLabel("Address", { exact: true }).fill("2 Rue du Port");
    await page.getByLabel("City").fill("Nantes");
    await page.getByLabel("Postcode").fill("44000");
    await page.getByLabel("Country").fill("France");
    await page.getByLabel("Card number").fill("4000 0000 0000 0002");
    await page.getByLabel("Expiry (MM/YY)").fill("01/34");
    await page.getByLabel("CVC").fill("999");
    await page.getByRole("button", { name: "Place order" }).click();
    await page.waitForURL(/\/orders\//);
    await page.getByTestId("order-status").filter({ hasText: "Cancelled" }).waitFor();
  }));
