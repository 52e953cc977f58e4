// The GraphQL client: urql over `fetch` for queries and mutations (same origin, `/graphql`)
// and graphql-ws for subscriptions (`/graphql/ws`, the token in `connection_init`). An
// expired access token is renewed once with the refresh token and the request retried.
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
