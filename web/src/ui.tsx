// Small shared pieces: alerts, page titles, form fields, the sign-in helpers.
import { useEffect, useRef, type ReactNode } from "react";
import type { CombinedError } from "urql";
import { errorCode } from "./client";
import { Link } from "react-router-dom";
import { useClient } from "urql";
import { restartWs } from "./client";
import { clearAuth, getSession, setSession } from "./session";

export function Title({ children }: { children: string }) {
  useEffect(() => {
    document.title = `${children} · Commerce`;
  }, [children]);
  return <h1>{children}</h1>;
}

export function Alert({ message, kind = "error" }: { message: string | null | undefined; kind?: "error" | "ok" }) {
  if (!message) return null;
  return (
    <p className={`alert alert-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {message}
    </p>
  );
}

export function Field(props: {
  label: string;
  name: string;
  type?: string;
  value: string;
  onChange: (v: string) => void;
  required?: boolean;
  autoComplete?: string;
  inputMode?: "numeric" | "decimal" | "text" | "email";
  hint?: string;
  maxLength?: number;
  multiline?: boolean;
}) {
  const id = `f-${props.name}`;
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {props.multiline ? (
        <textarea id={id} name={props.name} value={props.value} required={props.required} maxLength={props.maxLength} rows={4} onChange={(e) => props.onChange(e.target.value)} />
      ) : (
        <input
          id={id}
          name={props.name}
          type={props.type ?? "text"}
          value={props.value}
          required={props.required}
          autoComplete={props.autoComplete}
          inputMode={props.inputMode}
          maxLength={props.maxLength}
          aria-describedby={props.hint ? `${id}-hint` : undefined}
          onChange={(e) => props.onChange(e.target.value)}
        />
      )}
      {props.hint && (
        <small id={`${id}-hint`} className="muted">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function NotFound() {
  return (
    <section className="panel">
      <Title>Page not found</Title>
      <p>
        There is nothing here. <Link to="/">Back to the shop</Link>
      </p>
    </section>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="muted" role="status">
      {what}…
    </p>
  );
}

export interface AuthPayload {
  accessToken: string;
  refreshToken: string;
  userId: string;
  role: string;
  cartId: string | null;
}

export const LOGIN = `mutation Login($email: String!, $password: String!, $cart: ID) {
  login(email: $email, password: $password, anonymousCartId: $cart) { accessToken refreshToken userId role cartId }
}`;

export function signedIn(p: AuthPayload, email: string) {
  setSession({
    accessToken: p.accessToken,
    refreshToken: p.refreshToken,
    userId: p.userId,
    role: p.role,
    email,
    cartId: p.cartId ?? getSession().cartId,
  });
  restartWs();
}

export function useLogout() {
  const client = useClient();
  return async () => {
    const t = getSession().refreshToken;
    if (t) await client.mutation("mutation($t: String!) { logout(refreshToken: $t) }", { t }).toPromise();
    clearAuth();
    restartWs();
  };
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/// Just after a write the read model may not have the new product, cart or order yet: while a
/// query answers NOT_FOUND or STALE, ask again shortly (at most `tries` times in a row).
export function useRetryWhilePending(error: CombinedError | undefined, again: () => void, tries = 60) {
  const code = errorCode(error);
  const pending = code === "NOT_FOUND" || code === "STALE";
  const count = useRef(0);
  useEffect(() => {
    if (!pending) {
      count.current = 0;
      return;
    }
    if (++count.current > tries) return;
    const t = setTimeout(again, 400);
    return () => clearTimeout(t);
  }, [pending, error, again, tries]);
  return pending && count.current <= tries;
}
