// Whole customer journeys through Envoy, as a k6 load test (run by `make bench`, see
// scripts/bench.sh): each iteration registers a customer and logs in, searches the catalogue
// and pages on, opens a product page, fills a cart, tokenizes a card at the payment gateway's
// endpoint, checks out and polls the order until the saga has CONFIRMED it. Bounded in count
// (JOURNEYS) and time (JOURNEY_SECONDS); loopback only; it stops by itself.
//
//   GRAPHQL_URL=http://127.0.0.1:28080/graphql ADMIN_EMAIL=... ADMIN_PASSWORD=... \
//     k6 run --quiet bench/journeys.js
//
// Prints a Markdown table (journeys/s, p50/p95 of each step) next to the raw limits given in
// RAW_* variables (measured by the other benchmarks of the same run), and writes k6's whole
// summary to JOURNEY_SUMMARY if set.

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';

const GRAPHQL_URL = __ENV.GRAPHQL_URL || 'http://127.0.0.1:28080/graphql';
const TOKENS_URL = GRAPHQL_URL.replace(/\/graphql$/, '/pay/v1/tokens');
const VUS = parseInt(__ENV.JOURNEY_VUS || '4', 10);
const JOURNEYS = parseInt(__ENV.JOURNEYS || '200', 10);
const SECONDS = parseInt(__ENV.JOURNEY_SECONDS || '60', 10);
const PRODUCTS = parseInt(__ENV.JOURNEY_PRODUCTS || '12', 10);
// How long one order may take from checkout to CONFIRMED before the journey counts as failed.
const CONFIRM_SECONDS = parseInt(__ENV.JOURNEY_CONFIRM_SECONDS || '30', 10);
// The word of this run's products (set in setup: each VU evaluates this module on its own).
const RUN_WORD = `journey${Date.now().toString(36)}`;

const STEPS = ['register', 'login', 'search', 'next_page', 'product_page', 'add_to_cart',
  'card_token', 'checkout', 'confirmed'];
const steps = Object.fromEntries(STEPS.map((s) => [s, new Trend(`step_${s}`, true)]));
const journeyTime = new Trend('journey_time', true);
const journeysOk = new Counter('journeys_ok');
const journeysFailed = new Counter('journeys_failed');

export const options = {
  scenarios: {
    journeys: {
      executor: 'shared-iterations',
      vus: VUS,
      iterations: JOURNEYS,
      maxDuration: `${SECONDS}s`,
      gracefulStop: `${CONFIRM_SECONDS + 5}s`,
    },
  },
  setupTimeout: '120s',
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max', 'count'],
  discardResponseBodies: false,
};

function loopbackOnly(url) {
  const host = url.replace(/^https?:\/\//, '').replace(/^\[::1\]/, 'localhost').split(/[/:]/)[0];
  if (!(host === 'localhost' || /^127\./.test(host))) {
    exec.test.abort(`not a loopback address: ${url}`);
  }
}

/** One GraphQL request; returns `data`, or throws with the errors. */
function gql(query, variables, token, name) {
  const body = gqlBody(query, variables, token, name);
  if (body.errors || !body.data) {
    throw new Error(`${name}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return body.data;
}

/** One GraphQL request; returns the JSON body, errors and all (throws unless HTTP 200). */
function gqlBody(query, variables, token, name) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = http.post(GRAPHQL_URL, JSON.stringify({ query, variables }), {
    headers,
    tags: { name },
    timeout: '30s',
  });
  let body = null;
  try {
    body = res.json();
  } catch (_) {
    // not JSON: reported below
  }
  if (res.status !== 200 || !body) {
    throw new Error(`${name}: HTTP ${res.status} ${String(res.body).slice(0, 300)}`);
  }
  return body;
}

/** Runs `f`, records its wall time under `step`, returns its value. */
function timed(step, f) {
  const t0 = Date.now();
  const v = f();
  steps[step].add(Date.now() - t0);
  return v;
}

const SEARCH = `query($q: String!, $after: String) {
  products(query: $q, first: 4, after: $after) {
    totalCount edges { cursor node { id name price { amountMinor currency } } }
    pageInfo { hasNextPage endCursor } } }`;
const PRODUCT = `query($id: ID!) { product(id: $id) { id name description
  price { amountMinor currency } stock { available } rating { average count }
  reviews(first: 5) { rating title } } }`;

export function setup() {
  loopbackOnly(GRAPHQL_URL);
  const admin = gql(
    'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }',
    { e: __ENV.ADMIN_EMAIL || 'admin@example.com', p: __ENV.ADMIN_PASSWORD || '' },
    null,
    'admin_login',
  ).login.accessToken;
  for (let i = 0; i < PRODUCTS; i++) {
    gql(
      `mutation($n: String!, $p: Int!) { createProduct(input: { name: $n, priceMinor: $p,
        currency: "EUR", initialStock: 1000000 }) { id } }`,
      { n: `${RUN_WORD} kettle ${i}`, p: 1000 + i },
      admin,
      'create_product',
    );
  }
  // Until the catalogue shows them all (bounded).
  const deadline = Date.now() + 60000;
  for (;;) {
    const n = gql(SEARCH, { q: RUN_WORD, after: null }, null, 'setup_search').products.totalCount;
    if (n >= PRODUCTS) break;
    if (Date.now() > deadline) exec.test.abort(`the catalogue shows ${n}/${PRODUCTS} products`);
    sleep(0.2);
  }
  return { word: RUN_WORD };
}

function journey(word) {
  const email = `j-${exec.vu.idInTest}-${exec.scenario.iterationInTest}-${word}@example.com`;
  const password = 'journey-pass-1';
  timed('register', () => gql(
    'mutation($e: String!, $p: String!) { register(email: $e, password: $p, name: "Journey") { id } }',
    { e: email, p: password }, null, 'register',
  ));
  const token = timed('login', () => gql(
    'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }',
    { e: email, p: password }, null, 'login',
  ).login.accessToken);

  const first = timed('search', () => gql(SEARCH, { q: word, after: null }, token, 'search').products);
  if (!first.pageInfo.hasNextPage) throw new Error('search: one page only');
  const second = timed('next_page', () => gql(
    SEARCH, { q: word, after: first.pageInfo.endCursor }, token, 'next_page',
  ).products);
  const hits = first.edges.concat(second.edges);
  const product = hits[exec.scenario.iterationInTest % hits.length].node.id;
  timed('product_page', () => gql(PRODUCT, { id: product }, token, 'product_page'));

  const cart = timed('add_to_cart', () => {
    const id = gql('mutation { createCart { cartId } }', {}, token, 'create_cart').createCart.cartId;
    gql(
      'mutation($c: ID!, $p: ID!, $q: Int!) { addItemToCart(cartId: $c, productId: $p, quantity: $q) { version } }',
      { c: id, p: product, q: 1 + (exec.scenario.iterationInTest % 3) }, token, 'add_item',
    );
    return id;
  });
  const payment = timed('card_token', () => {
    const res = http.post(TOKENS_URL, JSON.stringify({
      number: '4242424242424242', exp_month: 12, exp_year: 2099, cvc: '123',
    }), { headers: { 'content-type': 'application/json' }, tags: { name: 'card_token' } });
    if (res.status !== 201) throw new Error(`card_token: HTTP ${res.status} ${res.body}`);
    return res.json().token;
  });
  const order = timed('checkout', () => gql(
    'mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId } }',
    { c: cart, t: payment }, token, 'checkout',
  ).checkout.orderId);
  timed('confirmed', () => {
    const deadline = Date.now() + CONFIRM_SECONDS * 1000;
    for (;;) {
      // NOT_FOUND until the order projector has the order: the read side is eventually
      // consistent, so that is "not yet".
      const body = gqlBody('query($id: ID!) { order(id: $id) { status } }', { id: order }, token, 'order');
      const code = body.errors && body.errors[0].extensions && body.errors[0].extensions.code;
      if (body.errors && code !== 'NOT_FOUND') throw new Error(`order: ${JSON.stringify(body.errors)}`);
      const status = body.data && body.data.order ? body.data.order.status : 'NOT_FOUND';
      if (status === 'CONFIRMED') return;
      if (status === 'CANCELLED' || status === 'FAILED') throw new Error(`order ${order} ${status}`);
      if (Date.now() > deadline) throw new Error(`order ${order} still ${status}`);
      sleep(0.05);
    }
  });
}

export default function (data) {
  const t0 = Date.now();
  try {
    journey(data.word);
    journeyTime.add(Date.now() - t0);
    journeysOk.add(1);
  } catch (e) {
    journeysFailed.add(1);
    console.error(String(e));
  }
}

function fmt(v) {
  return v === undefined || v === null ? '-' : v.toFixed(2);
}

export function handleSummary(data) {
  const m = data.metrics;
  const ok = m.journeys_ok ? m.journeys_ok.values.count : 0;
  const failed = m.journeys_failed ? m.journeys_failed.values.count : 0;
  const seconds = data.state.testRunDurationMs / 1000;
  const rate = ok / seconds;
  const raw = (k) => __ENV[k] || '-';
  // Which raw measurement of the same run each step is closest to.
  const limits = {
    register: `argon2 in the user service; ${raw('RAW_INSERT_P50')} ms \`insert_one\` p50`,
    login: 'argon2 in the user service',
    search: `${raw('RAW_SEARCH_SQL_P50')} ms same SQL (sqlx) p50`,
    next_page: `${raw('RAW_SEARCH_SQL_P50')} ms same SQL (sqlx) p50`,
    product_page: `${raw('RAW_DETAILS_SQL_P50')} ms same SQL (sqlx) p50`,
    add_to_cart: `2 commands; ${raw('RAW_INSERT_P50')} ms \`insert_one\` p50`,
    card_token: 'HTTP to the payment service',
    checkout: `1 command; ${raw('RAW_INSERT_P50')} ms \`insert_one\` p50`,
    confirmed: 'saga: ~6 commands via Kafka',
  };
  const lines = [
    `| measure | count | p50 ms | p95 ms | raw limit, same run |`,
    `|---|---:|---:|---:|---|`,
    `| whole journey (${ok} done, ${failed} failed, ${VUS} VUs, ${seconds.toFixed(1)} s): ${rate.toFixed(2)} journeys/s | ${ok} | ${fmt(m.journey_time && m.journey_time.values['p(50)'])} | ${fmt(m.journey_time && m.journey_time.values['p(95)'])} | ${raw('RAW_INSERT_RATE')}/s \`insert_one\` |`,
  ];
  for (const s of STEPS) {
    const t = m[`step_${s}`];
    if (!t) continue;
    lines.push(`| ${s.replace(/_/g, ' ')} | ${t.values.count} | ${fmt(t.values['p(50)'])} | ${fmt(t.values['p(95)'])} | ${limits[s]} |`);
  }
  const reqs = m.http_reqs ? m.http_reqs.values.count : 0;
  lines.push('');
  lines.push(`HTTP requests: ${reqs} (${(reqs / seconds).toFixed(1)}/s), failed: ${m.http_req_failed ? (m.http_req_failed.values.rate * 100).toFixed(2) : 0}%.`);
  const out = { stdout: `${lines.join('\n')}\n` };
  if (__ENV.JOURNEY_SUMMARY) out[__ENV.JOURNEY_SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
