// The pages behind the account mails: asking for a password reset, choosing a new password
// with the mailed token (`/reset-password?token=…`) and verifying the email
// (`/verify-email?token=…`). The API answers a reset request alike whether or not the email
// has an account, and so does this page.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { useClient } from "urql";
import { errorCode, errorMessage } from "../client";
import { Alert, Field, Title } from "../ui";

const TOKEN_REFUSED = "This link is not valid any more (used, replaced by a newer one, or expired). Ask for a new one.";

export function ForgotPasswordPage() {
  const client = useClient();
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    const r = await client.mutation(`mutation($e: String!) { requestPasswordReset(email: $e) }`, { e: email.trim() }).toPromise();
    setBusy(false);
    if (r.error) setError(errorMessage(r.error) ?? "Could not ask for a reset.");
    else setSent(true);
  };
  return (
    <section className="panel narrow">
      <Title>Forgot your password?</Title>
      {sent ? (
        <p role="status">If an account has this email, a link to choose a new password is on its way. It works once, for 30 minutes.</p>
      ) : (
        <form onSubmit={submit}>
          <Field label="Email" name="email" type="email" value={email} onChange={setEmail} required autoComplete="email" maxLength={254} />
          <Alert message={error} />
          <button type="submit" className="primary wide" disabled={busy}>
            Mail me a link
          </button>
        </form>
      )}
      <p>
        <Link to="/login">Back to sign in</Link>
      </p>
    </section>
  );
}

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const client = useClient();
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    const r = await client
      .mutation(`mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }`, { t: token, p: password })
      .toPromise();
    setBusy(false);
    if (!r.error) return setDone(true);
    const message = errorMessage(r.error) ?? "";
    setError(errorCode(r.error) === "INVALID_ARGUMENT" && message.includes("token") ? TOKEN_REFUSED : message || "Could not reset the password.");
  };
  return (
    <section className="panel narrow">
      <Title>Choose a new password</Title>
      {done ? (
        <p role="status">
          Your password is changed, and every session signed in before is signed out. <Link to="/login">Sign in</Link>
        </p>
      ) : (
        <form onSubmit={submit}>
          <Field label="New password" name="password" type="password" value={password} onChange={setPassword} required autoComplete="new-password" hint="At least 8 characters." />
          <Alert message={token ? error : "This page needs the link from the mail."} />
          <button type="submit" className="primary wide" disabled={busy || !token}>
            Set the password
          </button>
        </form>
      )}
      <p>
        <Link to="/forgot-password">Ask for a new link</Link>
      </p>
    </section>
  );
}

export function VerifyEmailPage() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const client = useClient();
  const [state, setState] = useState<"busy" | "ok" | string>("busy");
  const asked = useRef(false);
  useEffect(() => {
    // Once: the token is single-use (StrictMode runs effects twice in development).
    if (asked.current) return;
    asked.current = true;
    if (!token) return setState("This page needs the link from the mail.");
    client
      .mutation(`mutation($t: String!) { verifyEmail(token: $t) }`, { t: token })
      .toPromise()
      .then((r) => setState(r.error ? (errorCode(r.error) === "INVALID_ARGUMENT" ? TOKEN_REFUSED : errorMessage(r.error) ?? "Could not verify.") : "ok"));
  }, [client, token]);
  return (
    <section className="panel narrow">
      <Title>Verify your email</Title>
      {state === "busy" ? <p>Verifying…</p> : state === "ok" ? <p role="status">Your email is verified. Thank you!</p> : <Alert message={state} />}
      <p>
        <Link to="/account">Your account</Link>
      </p>
    </section>
  );
}
