//! Where the browser tests and screenshots find the app: WEB_BASE_URL if given, else the API's
//! origin when it serves the app (the BFF serving web/dist behind Envoy), else a `vite
//! preview` of web/dist proxying the API (for a BFF built before it served the app).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

async function servesApp(base) {
  try {
    const r = await fetch(`${base}/`, { headers: { accept: "text/html" } });
    return r.ok && (await r.text()).includes('id="root"');
  } catch {
    return false;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/// The app's base URL and a `stop` for whatever was started.
export async function serveApp(api) {
  const origin = new URL("/", api).href.replace(/\/$/, "");
  if (process.env.WEB_BASE_URL) return { base: process.env.WEB_BASE_URL.replace(/\/$/, ""), stop: () => {} };
  if (await servesApp(origin)) return { base: origin, stop: () => {} };
  if (!existsSync(join(WEB_DIR, "dist", "index.html"))) {
    const b = spawnSync("npm", ["run", "build"], { cwd: WEB_DIR, stdio: "inherit" });
    if (b.status !== 0) throw new Error("npm run build failed");
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(join(WEB_DIR, "node_modules/.bin/vite"), ["preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: WEB_DIR,
    env: { ...process.env, API_ORIGIN: origin },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const end = Date.now() + 30000;
  while (!(await servesApp(base))) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill("SIGTERM");
      throw new Error(`vite preview did not answer on ${base}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(`[web] the API's origin does not serve the app: vite preview on ${base} proxies ${origin}`);
  return { base, stop: () => child.kill("SIGTERM") };
}
