//! `npm test`: the browser journeys against a running stack. The API is GRAPHQL_URL; the app
//! is WEB_BASE_URL if given, else the API's origin when it serves the app (the BFF serving
//! web/dist behind Envoy), else a `vite preview` of a fresh build proxying to the API.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const api = process.env.GRAPHQL_URL ?? "http://127.0.0.1:8080/graphql";
const origin = new URL("/", api).href.replace(/\/$/, "");
const only = process.argv.slice(2);

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

async function waitFor(url, child) {
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error("vite preview exited");
    if (await servesApp(url)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`vite preview did not answer on ${url}`);
}

let preview = null;
let base = process.env.WEB_BASE_URL;
if (!base && (await servesApp(origin))) base = origin;
if (!base) {
  if (!existsSync(join(web, "dist", "index.html")) || process.env.WEB_REBUILD === "1") {
    const b = spawnSync("npm", ["run", "build"], { cwd: web, stdio: "inherit" });
    if (b.status !== 0) process.exit(b.status ?? 1);
  }
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  preview = spawn(join(web, "node_modules/.bin/vite"), ["preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: web,
    env: { ...process.env, API_ORIGIN: origin },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitFor(base, preview);
}
console.log(`[web tests] app at ${base}, API at ${api}`);

const files = readdirSync(join(web, "tests"))
  .filter((f) => f.endsWith(".test.mjs") && (only.length === 0 || only.some((o) => f.includes(o))))
  .map((f) => join("tests", f));
const t = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], {
  cwd: web,
  stdio: "inherit",
  env: { ...process.env, WEB_BASE_URL: base, GRAPHQL_URL: api },
});
preview?.kill("SIGTERM");
process.exit(t.status ?? 1);
