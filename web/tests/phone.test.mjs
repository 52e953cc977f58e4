//! On a phone-sized screen (390 × 844): the shop, a product and the cart fit the width (no
//! sideways scrolling), and the journey to the cart works by touch.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE_URL, adminToken, createProduct, journey, launch, uniqueWord } from "./lib.mjs";

const PHONE = { width: 390, height: 844 };
let browser;
let name;
before(async () => {
  browser = await launch();
  name = `${uniqueWord("Pocket")} Travel Grinder`;
  await createProduct(await adminToken(), { name, brand: "Hario", categories: ["coffee"], priceMinor: 3450, currency: "EUR", initialStock: 4 });
});
after(async () => {
  await browser?.close();
});

async function fitsWidth(page) {
  const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= inner, `the page is ${scroll}px wide on a ${inner}px screen`);
}

test("the shop works on a phone", () =>
  journey(
    browser,
    "the shop works on a phone",
    async (page) => {
      await page.goto(`${BASE_URL}/?q=${encodeURIComponent(name.split(" ")[0])}`);
      await page.getByRole("link", { name: new RegExp(name) }).waitFor();
      await fitsWidth(page);
      await page.getByRole("link", { name: new RegExp(name) }).tap();
      await page.getByRole("heading", { level: 1, name }).waitFor();
      await fitsWidth(page);
      await page.getByRole("button", { name: "Add to cart" }).tap();
      await page.getByTestId("cart-count").filter({ hasText: /^1$/ }).waitFor();
      await page.getByRole("link", { name: /^Cart/ }).tap();
      await page.getByTestId("cart-total").filter({ hasText: "€34.50" }).waitFor();
      await fitsWidth(page);
    },
    { ...PHONE, hasTouch: true, isMobile: true },
  ));
