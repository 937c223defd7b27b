// Browser helpers shared by browser.mjs and multi-replica.mjs: a static server for the test
// pages (the app page, the socket.io-client browser bundle, the Admin UI from
// @socket.io/admin-ui's ui/dist), Debian's Chromium through playwright-core, and the Admin UI
// logged in and asserted on its DOM.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = fileURLToPath(new URL(".", import.meta.url));
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = join(HERE, "artifacts");

const FILES = {
  "/app.html": join(HERE, "browser", "app.html"),
  "/socket.io.min.js": join(HERE, "node_modules", "socket.io-client", "dist", "socket.io.min.js"),
};
const ADMIN_UI = join(HERE, "node_modules", "@socket.io", "admin-ui", "ui", "dist");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml", ".map": "application/json" };

/** A static server for the pages: the app page, the client bundle, the Admin UI. */
export function serve(port, host) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/admin-ui") {
      res.writeHead(301, { location: "/admin-ui/" }).end();
      return;
    }
    let file = FILES[path];
    if (!file && path.startsWith("/admin-ui/")) {
      const inside = normalize(path.slice("/admin-ui/".length) || "index.html");
      if (!inside.startsWith("..")) file = join(ADMIN_UI, inside);
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

/** Debian's Chromium (no browser download). */
export async function launch() {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (apt-get install chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}

/** Logs in to the Admin UI and waits until its Sockets page lists every one of `sids`. */
export async function adminUiShows(browser, { page: pageUrl, api, user, password, sids, servers = 1, screenshot }) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  try {
    // The UI links fonts and icons from CDNs; without them it works all the same.
    await page.route(/^https:\/\//, (route) => route.abort());
    await page.goto(pageUrl, { waitUntil: "domcontentloaded" });
    await page.getByLabel("Server URL").fill(api);
    await page.getByLabel("Username").fill(user);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.locator(".v-app-bar .v-chip", { hasText: /^\s*connected\s*$/ }).first().waitFor({ timeout: 10000 });
    await page.evaluate(() => (location.hash = "#/sockets/"));
    await selectNamespace(page, "/chat");
    for (const sid of sids) {
      await page.locator("table tbody tr", { hasText: sid }).first().waitFor({ timeout: 10000 });
    }
    await page.evaluate(() => (location.hash = "#/servers/"));
    // A row per replica, named `hostname#pid`, once its server_stats came (every 2 s).
    const rows = page.locator("table tbody tr", { hasText: /#\d+/ });
    await rows.nth(servers - 1).waitFor({ timeout: 10000 });
    assert.equal(await rows.count(), servers, "one row per replica");
    for (let i = 0; i < servers; i++) {
      const text = await rows.nth(i).innerText();
      assert.match(text, /healthy/i, text);
      assert.doesNotMatch(text, /unhealthy/i, text);
    }
    await page.evaluate(() => (location.hash = "#/sockets/"));
    await selectNamespace(page, "/chat");
    await page.locator("table tbody tr", { hasText: sids[0] }).first().waitFor();
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, screenshot), fullPage: true });
  } finally {
    await context.close();
  }
}

/** Picks `name` in the page's "Select namespace" list (the UI opens on the first namespace
 *  this replica listed, which may be /admin when the /chat sockets are on another one). */
async function selectNamespace(page, name) {
  const select = page.locator(".v-select", { hasText: "Select namespace" }).first();
  await select.waitFor({ timeout: 10000 });
  if ((await select.innerText()).includes(name)) return;
  await select.locator(".v-select__slot").click();
  await page.locator(".v-menu__content .v-list-item", { hasText: name }).first().click();
  await page.locator(".v-select", { hasText: name }).first().waitFor({ timeout: 5000 });
}
