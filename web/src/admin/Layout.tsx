// The back office's frame: sign-in for staff (an admin account), then the navigation.
import { useState, type FormEvent } from "react";
import { Link, NavLink, Outlet, useNavigate } from "react-router-dom";
import { useSession } from "../session";
import { useLogin } from "../shop/Auth";
import { Alert, Field, Title, useLogout } from "../ui";

export function AdminLayout() {
  const session = useSession();
  const logout = useLogout();
  const navigate = useNavigate();
  return (
    <div className="shell admin">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar admin-bar">
        <div className="topbar-inner">
          <Link to="/admin" className="logo">
            <span aria-hidden="true" className="logo-mark">◆</span> Commerce <span className="tag">Back office</span>
          </Link>
          {session.role === "admin" && (
            <nav aria-label="Back office" className="topnav">
              <NavLink to="/admin" end>
                Orders
              </NavLink>
              <NavLink to="/admin/products">Products</NavLink>
              <NavLink to="/">Storefront</NavLink>
              <button
                type="button"
                className="link"
                onClick={async () => {
                  await logout();
                  navigate("/admin");
                }}
              >
                Sign out
              </button>
            </nav>
          )}
        </div>
      </header>
      <main id="main" className="page">
        {session.role === "admin" ? <Outlet /> : <AdminLogin signedInAsCustomer={!!session.accessToken} />}
      </main>
    </div>
  );
}

function AdminLogin({ signedInAsCustomer }: { signedInAsCustomer: boolean }) {
  const login = useLogin();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await login(email, password);
    if (!r.ok) setError(r.message);
    else if (r.role !== "admin") setError("This account is not a staff account.");
  };
  return (
    <section className="panel narrow">
      <Title>Back office sign in</Title>
      {signedInAsCustomer && <Alert message="You are signed in as a customer. Sign in with a staff account." />}
      <form onSubmit={submit}>
        <Field label="Email" name="email" type="email" value={email} onChange={setEmail} required autoComplete="username" />
        <Field label="Password" name="password" type="password" value={password} onChange={setPassword} required autoComplete="current-password" />
        <Alert message={error} />
        <button type="submit" className="primary wide">
          Sign in
        </button>
      </form>
    </section>
  );
}
