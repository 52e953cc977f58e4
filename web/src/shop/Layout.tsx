// The storefront's frame: a header with the search box, the cart and the account, the page,
// and a footer.
import { useState, type FormEvent } from "react";
import { Link, NavLink, Outlet, useNavigate, useSearchParams } from "react-router-dom";
import { useCart } from "../cart";
import { useSession } from "../session";
import { money } from "../format";

export function ShopLayout() {
  const session = useSession();
  const { cart, total } = useCart();
  const [params] = useSearchParams();
  const [q, setQ] = useState(params.get("q") ?? "");
  const navigate = useNavigate();
  const search = (e: FormEvent) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (q.trim()) p.set("q", q.trim());
    navigate(`/?${p}`);
  };
  const count = cart?.itemCount ?? 0;
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <Link to="/" className="logo" aria-label="Commerce, home">
            <span aria-hidden="true" className="logo-mark">◆</span> Commerce
          </Link>
          <form role="search" className="search" onSubmit={search}>
            <label htmlFor="site-search" className="sr-only">
              Search products
            </label>
            <input id="site-search" type="search" placeholder="Search products" value={q} onChange={(e) => setQ(e.target.value)} />
            <button type="submit">Search</button>
          </form>
          <nav aria-label="Account and cart" className="topnav">
            {session.accessToken ? (
              <>
                <NavLink to="/account/orders">Orders</NavLink>
                <NavLink to="/account">Account</NavLink>
                {session.role === "admin" && <NavLink to="/admin">Back office</NavLink>}
              </>
            ) : (
              <>
                <NavLink to="/login">Sign in</NavLink>
                <NavLink to="/register">Register</NavLink>
              </>
            )}
            <NavLink to="/cart" className="cart-link">
              Cart <span className="badge" data-testid="cart-count">{count}</span>
              {total && <span className="cart-total"> {money(total.amountMinor, total.currency)}</span>}
            </NavLink>
          </nav>
        </div>
      </header>
      <main id="main" className="page">
        <Outlet />
      </main>
      <footer className="footer">
        <p>Commerce: an event-sourced shop. Test card 4242 4242 4242 4242.</p>
      </footer>
    </div>
  );
}
