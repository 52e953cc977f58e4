// The single-page app: the storefront at `/`, the back office at `/admin`.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Route, Routes } from "react-router-dom";
import { Provider } from "urql";
import { client } from "./client";
import { CartProvider } from "./cart";
import { ShopLayout } from "./shop/Layout";
import { Catalogue } from "./shop/Catalogue";
import { ProductPage } from "./shop/ProductPage";
import { CartPage } from "./shop/CartPage";
import { CheckoutPage } from "./shop/CheckoutPage";
import { OrderPage } from "./shop/OrderPage";
import { LoginPage, RegisterPage } from "./shop/Auth";
import { ForgotPasswordPage, ResetPasswordPage, VerifyEmailPage } from "./shop/AccountMail";
import { AccountPage, MyOrdersPage } from "./shop/Account";
import { AdminLayout } from "./admin/Layout";
import { AdminOrders, AdminOrder } from "./admin/Orders";
import { AdminProducts, AdminProductEdit, AdminProductNew } from "./admin/Products";
import { NotFound } from "./ui";
import "./styles.css";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Provider value={client}>
      <CartProvider>
        <BrowserRouter>
          <Routes>
            <Route path="/admin" element={<AdminLayout />}>
              <Route index element={<AdminOrders />} />
              <Route path="orders/:id" element={<AdminOrder />} />
              <Route path="products" element={<AdminProducts />} />
              <Route path="products/new" element={<AdminProductNew />} />
              <Route path="products/:id" element={<AdminProductEdit />} />
              <Route path="*" element={<NotFound />} />
            </Route>
            <Route element={<ShopLayout />}>
              <Route index element={<Catalogue />} />
              <Route path="products/:id" element={<ProductPage />} />
              <Route path="cart" element={<CartPage />} />
              <Route path="checkout" element={<CheckoutPage />} />
              <Route path="orders/:id" element={<OrderPage />} />
              <Route path="login" element={<LoginPage />} />
              <Route path="register" element={<RegisterPage />} />
              <Route path="forgot-password" element={<ForgotPasswordPage />} />
              <Route path="reset-password" element={<ResetPasswordPage />} />
              <Route path="verify-email" element={<VerifyEmailPage />} />
              <Route path="account" element={<AccountPage />} />
              <Route path="account/orders" element={<MyOrdersPage />} />
              <Route path="*" element={<NotFound />} />
            </Route>
          </Routes>
        </BrowserRouter>
      </CartProvider>
    </Provider>
  </StrictMode>,
);
