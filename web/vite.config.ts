// The build of the storefront and back office. `npm run dev` / `npm run preview` proxy the API
// (`/graphql`, `/graphql/ws`, and the payment gateway's `/pay/v1/tokens`) to API_ORIGIN (default: a local `make up` stack's Envoy), so the
// app is same-origin with the API as it is when the BFF serves web/dist.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const api = process.env.API_ORIGIN ?? "http://127.0.0.1:8080";
const proxy = {
  "/graphql": { target: api, changeOrigin: true, ws: true },
  "/pay": { target: api, changeOrigin: true },
};

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
  build: { sourcemap: false, chunkSizeWarningLimit: 700 },
});
