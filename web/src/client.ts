// The GraphQL client: urql over `fetch` for queries and mutations (same origin, `/graphql`)
// and graphql-ws for subscriptions (`/graphql/ws`, the token in `connection_init`). An
// expired access token is renewed once with the refresh token and the request retried (and a
// websocket closed for an expired token, 4401, reconnects with a renewed one). Cards go to the
// payment gateway's tokenization endpoint (`/pay/v1/tokens`), never to the GraphQL API.
import { Client, cacheExchange, fetchExchange, subscriptionExchange, CombinedError } from "urql";
import { createClient as createWsClient } from "graphql-ws";
import { clearAuth, getSession, setSession } from "./session";

const httpUrl = "/graphql";
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql/ws`;

let refreshing: Promise<boolean> | null = null;

async function refresh(): Promise<boolean> {
  const token = getSession().refreshToken;
  if (!token) return false;
  const res = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken role userId } }",
      variables: { t: token },
    }),
  });
  const body = await res.json().catch(() => null);
  const p = body?.data?.refreshToken;
  if (!p) {
    clearAuth();
    return false;
  }
  setSession({ accessToken: p.accessToken, refreshToken: p.refreshToken, role: p.role, userId: p.userId });
  restartWs();
  return true;
}

function withAuth(init: RequestInit | undefined): RequestInit {
  const token = getSession().accessToken;
  const headers = new Headers(init?.headers);
  if (token) headers.set("authorization", `Bearer ${token}`);
  return { ...init, headers };
}

// A fetch that renews the access token on UNAUTHENTICATED and retries once.
async function authFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const res = await fetch(input, withAuth(init));
  if (!getSession().refreshToken) return res;
  const body = await res.clone().json().catch(() => null);
  const unauth = body?.errors?.some((e: { extensions?: { code?: string } }) => e.extensions?.code === "UNAUTHENTICATED");
  if (!unauth) return res;
  refreshing ??= refresh().finally(() => (refreshing = null));
  return (await refreshing) ? fetch(input, withAuth(init)) : res;
}

export const ws = createWsClient({
  url: wsUrl,
  lazy: true,
  retryAttempts: Infinity,
  shouldRetry: () => true,
  connectionParams: () => {
    const token = getSession().accessToken;
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
  on: {
    closed: (event) => {
      if ((event as CloseEvent | undefined)?.code === 4401 && getSession().refreshToken) {
        refreshing ??= refresh().finally(() => (refreshing = null));
      }
    },
  },
});

// After signing in or out, subscriptions reconnect with the new identity.
export function restartWs() {
  ws.terminate();
}

export const client = new Client({
  url: httpUrl,
  fetch: authFetch,
  // GET /graphql is GraphiQL here: every operation is a POST.
  preferGetMethod: false,
  requestPolicy: "cache-and-network",
  exchanges: [
    cacheExchange,
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || "" };
        return {
          subscribe(sink) {
            const unsubscribe = ws.subscribe(input, sink);
            return { unsubscribe };
          },
        };
      },
    }),
  ],
});

// A readable message for an error: the API's code, explained.
export function errorMessage(error: CombinedError | undefined | null): string | null {
  if (!error) return null;
  if (error.networkError) return "The shop cannot be reached right now. Please try again.";
  const e = error.graphQLErrors[0];
  const code = e?.extensions?.code as string | undefined;
  switch (code) {
    case "UNAUTHENTICATED":
      return "Please sign in.";
    case "FORBIDDEN":
      return "You are not allowed to do that.";
    case "THROTTLED":
      return e?.message ?? "Too many attempts; please wait a moment.";
    case "UNAVAILABLE":
    case "CONFLICT":
    case "STALE":
      return "The shop is busy; please try again.";
    default:
      return e?.message ?? error.message;
  }
}

export function errorCode(error: CombinedError | undefined | null): string | undefined {
  return error?.graphQLErrors[0]?.extensions?.code as string | undefined;
}

export interface CardInput {
  number: string;
  expMonth: number;
  expYear: number;
  cvc: string;
}

/// Sends the card to the payment gateway, which answers a token to check out with; or the
/// gateway's reason for refusing the card.
export async function tokenizeCard(card: CardInput): Promise<{ token: string } | { error: string }> {
  try {
    const res = await fetch("/pay/v1/tokens", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ number: card.number, exp_month: card.expMonth, exp_year: card.expYear, cvc: card.cvc }),
    });
    const body = await res.json().catch(() => null);
    if (res.ok && typeof body?.token === "string") return { token: body.token };
    const message: string | undefined = body?.error?.message;
    return { error: message ? `The card was refused: ${message}.` : "The card could not be checked. Please try again." };
  } catch {
    return { error: "The payment service cannot be reached right now. Please try again." };
  }
}
