//! The back office: an admin signs in, creates a product and sees it in the store, sees a
//! new order arrive in the live feed, ships it and marks it delivered; a customer cannot
//! get in.
import { test, before, after } from "node:test";
import { ADMIN_EMAIL, ADMIN_PASSWORD, BASE_URL, adminToken, createProduct, journey, launch, newCustomer, placeOrder, uniqueWord, shortId } from "./lib.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function signIn(page) {
  await page.goto(`${BASE_URL}/admin`);
  await page.getByRole("heading", { name: "Back office sign in" }).waitFor();
  await page.getByLabel("Email").fill(ADMIN_EMAIL);
  await page.getByLabel("Password").fill(ADMIN_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Orders", level: 1 }).waitFor();
}

test("an admin creates a product and it is in the store", () =>
  journey(browser, "an admin creates a product and it is in the store", async (page) => {
    await signIn(page);
    const name = `${uniqueWord("Kettle")} Gooseneck Kettle`;
    await page.getByRole("link", { name: "Products" }).click();
    await page.getByRole("link", { name: "New product" }).click();
    await page.getByLabel("Name").fill(name);
    await page.getByLabel("Brand").fill("Pourover Co");
    await page.getByLabel("Categories").fill("kitchen, coffee");
    await page.getByLabel("Description").fill("Precise pouring, 1 litre.");
    await page.getByLabel("Attributes").fill("colour = matte black\nvolume = 1 l");
    await page.getByLabel("Price").fill("49.90");
    await page.getByLabel("Currency").fill("EUR");
    await page.getByLabel("Initial stock").fill("7");
    await page.getByRole("button", { name: "Create product" }).click();
    await page.getByText("Product created.").waitFor();
    await page.getByRole("heading", { name, level: 1 }).waitFor();

    // Stock received in the back office shows in the store.
    await page.getByLabel("Change (units)").fill("5");
    await page.getByLabel("Reason").fill("delivery");
    await page.getByRole("button", { name: "Adjust stock" }).click();
    await page.getByText("Stock adjusted.").waitFor();
    await page.getByText("On hand 12 · reserved 0 · available 12").waitFor();

    await page.getByRole("link", { name: "View in the store" }).click();
    await page.getByRole("heading", { name, level: 1 }).waitFor();
    await page.getByText("€49.90").first().waitFor();
    await page.getByText("12 in stock").waitFor();
    await page.getByText("matte black").waitFor();

    // And the catalogue's search finds it.
    await page.goto(`${BASE_URL}/?q=${encodeURIComponent(name.split(" ")[0])}`);
    await page.getByRole("link", { name: new RegExp(name) }).waitFor();
  }));

test("a new order appears in the live feed and is shipped and delivered", () =>
  journey(browser, "a new order appears in the live feed and is shipped and delivered", async (page) => {
    await signIn(page);
    await page.getByText("Orders placed from now on appear here.").waitFor();

    // A product and a customer's order, through the API, while the admin watches.
    const productId = await createProduct(await adminToken(), {
      name: `${uniqueWord("Mug")} Stoneware Mug`,
      priceMinor: 1800,
      currency: "EUR",
      initialStock: 10,
    });
    const customer = await newCustomer("Carla Feed");
    const orderId = await placeOrder(customer.token, productId, 2);
    const short = shortId(orderId);

    const feed = page.getByRole("list", { name: "New orders" });
    await feed.getByRole("link", { name: short }).waitFor();
    await feed.getByText("€36.00").waitFor();
    await feed.getByRole("link", { name: short }).click();

    await page.getByRole("heading", { name: `Order ${short}` }).waitFor();
    await page.getByTestId("order-status").filter({ hasText: "Confirmed" }).waitFor();
    await page.getByLabel("Carrier").fill("DHL");
    await page.getByLabel("Tracking number").fill("JD014600");
    await page.getByRole("button", { name: "Ship order" }).click();
    await page.getByTestId("order-status").filter({ hasText: "Shipped" }).waitFor();
    await page.getByText("DHL, tracking number JD014600", { exact: true }).waitFor();
    await page.getByRole("button", { name: "Mark delivered" }).click();
    await page.getByTestId("order-status").filter({ hasText: "Delivered" }).waitFor();

    // A partial refund shows on the order.
    await page.getByLabel(/^Amount/).fill("5");
    await page.getByRole("button", { name: "Refund" }).click();
    await page.getByText("Refund requested.").waitFor();
    await page.getByRole("row", { name: /Refunded.*€5\.00/ }).waitFor();
  }));

test("a customer account cannot use the back office", () =>
  journey(browser, "a customer account cannot use the back office", async (page) => {
    const customer = await newCustomer("Dan Customer");
    await page.goto(`${BASE_URL}/admin`);
    await page.getByLabel("Email").fill(customer.email);
    await page.getByLabel("Password").fill(customer.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("This account is not a staff account.").waitFor();
    await page.getByRole("heading", { name: "Back office sign in" }).waitFor();
  }));

test("an admin archives a product and puts it back on sale", () =>
  journey(browser, "an admin archives a product and puts it back on sale", async (page) => {
    const token = await adminToken();
    const name = `${uniqueWord("Teapot")} Cast Iron Teapot`;
    const id = await createProduct(token, { name, priceMinor: 3500, currency: "EUR", initialStock: 4 });
    page.on("dialog", (d) => d.accept());
    await signIn(page);
    await page.goto(`${BASE_URL}/admin/products/${id}`);
    await page.getByRole("heading", { name, level: 1 }).waitFor();
    await page.getByRole("button", { name: "Archive product" }).click();
    await page.getByText("Product archived.").waitFor();
    await page.getByRole("button", { name: "Put back on sale" }).waitFor();

    // The back office still lists it, marked; the store's search no longer finds it.
    const word = name.split(" ")[0];
    await page.goto(`${BASE_URL}/admin/products?q=${encodeURIComponent(word)}`);
    await page.getByRole("row", { name: new RegExp(`${name}.*Archived`) }).waitFor();

    await page.getByRole("link", { name }).click();
    await page.getByRole("button", { name: "Put back on sale" }).click();
    await page.getByText("Product back on sale.").waitFor();
    await page.getByRole("button", { name: "Archive product" }).waitFor();
    await page.goto(`${BASE_URL}/?q=${encodeURIComponent(word)}`);
    await page.getByRole("link", { name: new RegExp(name) }).waitFor();
  }));
