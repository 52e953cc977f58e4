//! `npm test [NAME...]`: the browser journeys (tests/*.test.mjs, or those whose file name
//! contains a NAME) against a running stack: the API at GRAPHQL_URL, the app found by
//! serve.mjs. Needs ADMIN_EMAIL / ADMIN_PASSWORD (the stack's stack.env has them).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { WEB_DIR, serveApp } from "./serve.mjs";

const api = process.env.GRAPHQL_URL ?? "http://127.0.0.1:8080/graphql";
const only = process.argv.slice(2);
const { base, stop } = await serveApp(api);
console.log(`[web tests] app at ${base}, API at ${api}`);
const files = readdirSync(join(WEB_DIR, "tests"))
  .filter((f) => f.endsWith(".test.mjs") && (only.length === 0 || only.some((o) => f.includes(o))))
  .map((f) => join("tests", f));
const t = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], {
  cwd: WEB_DIR,
  stdio: "inherit",
  env: { ...process.env, WEB_BASE_URL: base, GRAPHQL_URL: api },
});
stop();
process.exit(t.status ?? 1);
