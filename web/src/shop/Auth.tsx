// Signing in and registering. Signing in hands over the anonymous cart, which the API adopts
// or merges into the customer's open cart.
import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { useClient } from "urql";
import { errorCode, errorMessage } from "../client";
import { getSession } from "../session";
import { Alert, Field, LOGIN, Title, signedIn, type AuthPayload } from "../ui";

export function useLogin() {
  const client = useClient();
  return async (email: string, password: string): Promise<{ ok: true; role: string } | { ok: false; message: string }> => {
    const r = await client
      .mutation<{ login: AuthPayload }>(LOGIN, { email: email.trim(), password, cart: getSession().cartId })
      .toPromise();
    if (!r.data) {
      const code = errorCode(r.error);
      return { ok: false, message: code === "UNAUTHENTICATED" || code === "NOT_FOUND" ? "Wrong email or password." : errorMessage(r.error) ?? "Could not sign in." };
    }
    signedIn(r.data.login, email.trim().toLowerCase());
    return { ok: true, role: r.data.login.role };
  };
}

export function LoginPage() {
  const [params] = useSearchParams();
  const next = params.get("next") ?? "/";
  const navigate = useNavigate();
  const login = useLogin();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const r = await login(email, password);
    setBusy(false);
    if (r.ok) navigate(next.startsWith("/") ? next : "/");
    else setError(r.message);
  };
  return (
    <section className="panel narrow">
      <Title>Sign in</Title>
      <form onSubmit={submit}>
        <Field label="Email" name="email" type="email" value={email} onChange={setEmail} required autoComplete="email" />
        <Field label="Password" name="password" type="password" value={password} onChange={setPassword} required autoComplete="current-password" />
        <Alert message={error} />
        <button type="submit" className="primary wide" disabled={busy}>
          Sign in
        </button>
      </form>
      <p>
        New here? <Link to={`/register?next=${encodeURIComponent(next)}`}>Create an account</Link>
      </p>
      <p>
        <Link to="/forgot-password">Forgot your password?</Link>
      </p>
    </section>
  );
}

export function RegisterPage() {
  const [params] = useSearchParams();
  const next = params.get("next") ?? "/";
  const client = useClient();
  const login = useLogin();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const r = await client
        .mutation(`mutation($e: String!, $p: String!, $n: String!) { register(email: $e, password: $p, name: $n) { id } }`, {
          e: email.trim(),
          p: password,
          n: name,
        })
        .toPromise();
      if (r.error) {
        const code = errorCode(r.error);
        return setError(code === "ALREADY_EXISTS" ? "An account with this email exists already. Sign in instead." : errorMessage(r.error));
      }
      const l = await login(email, password);
      if (l.ok) navigate(next.startsWith("/") ? next : "/");
      else setError(l.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel narrow">
      <Title>Create an account</Title>
      <form onSubmit={submit}>
        <Field label="Name" name="name" value={name} onChange={setName} required autoComplete="name" maxLength={200} />
        <Field label="Email" name="email" type="email" value={email} onChange={setEmail} required autoComplete="email" maxLength={254} />
        <Field label="Password" name="password" type="password" value={password} onChange={setPassword} required autoComplete="new-password" hint="At least 8 characters." />
        <Alert message={error} />
        <button type="submit" className="primary wide" disabled={busy}>
          Create account
        </button>
      </form>
      <p>
        Have an account? <Link to={`/login?next=${encodeURIComponent(next)}`}>Sign in</Link>
      </p>
    </section>
  );
}
