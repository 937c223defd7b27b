// The browser as the user: Debian's Chromium, driven by playwright-core (no browser download).
// A page on http://localhost:5173 (where a Vite dev server would serve a React app) uses
// fetch with credentials and the socket.io-client browser bundle against Parley on another
// origin; a second browser context is the other user; a page on a disallowed origin is
// refused; the unmodified Socket.IO Admin UI (from @socket.io/admin-ui's ui/dist) logs in
// and shows the sockets of both contexts. Run by run.sh against a server started with
// CORS_ORIGINS=http://localhost:5173 and ADMIN_UI=true (credentials ADMIN_USER /
// ADMIN_PASSWORD). A screenshot of the Admin UI goes to e2e/artifacts/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { adminUiShows, launch, serve } from "./browser-lib.mjs";

// Same site as the page (cookies are SameSite=Strict), another origin (CORS applies).
const API = (process.env.PARLEY_URL ?? "http://127.0.0.1:3000").replace("127.0.0.1", "localhost");
const ALLOWED = "http://localhost:5173";
const DISALLOWED = "http://127.0.0.1:5174";
const USER = process.env.ADMIN_USER ?? "ops";
const PASSWORD = process.env.ADMIN_PASSWORD ?? "correct horse battery staple";

let browser;
let servers = [];

before(async () => {
  servers = [await serve(5173, "127.0.0.1"), await serve(5174, "127.0.0.1")];
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const server of servers) server.close();
});

/** A fresh browser context (its own cookie jar: another user) on the app page. */
async function appPage(origin = ALLOWED) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`page error (${origin}): ${error.message}`));
  await page.goto(`${origin}/app.html?api=${encodeURIComponent(API)}`);
  return { context, page };
}

test("two users in two browser contexts: sign-up, reload and refresh, live message, typing, receipt, logout", async () => {
  const alice = await appPage();
  const bob = await appPage();
  try {
    const signedUp = await alice.page.evaluate(() => app.register("BrowserAlice"));
    assert.equal(signedUp.status, 201);
    // A reload loses the in-memory token; the httpOnly refresh cookie gets a new one.
    await alice.page.reload();
    const refreshed = await alice.page.evaluate(() => app.refresh());
    assert.equal(refreshed.status, 200, "the refresh cookie crossed origins with credentials: 'include'");
    assert.ok(refreshed.token && refreshed.token !== signedUp.token);
    const bobUp = await bob.page.evaluate(() => app.register("BrowserBob"));
    assert.equal(bobUp.status, 201);
    const bobLogin = await bob.page.evaluate((email) => app.login(email), bobUp.email);
    assert.equal(bobLogin.status, 200);

    const aliceSid = await alice.page.evaluate((token) => app.connect(token), refreshed.token);
    const bobSid = await bob.page.evaluate((token) => app.connect(token), bobLogin.token);
    assert.ok(aliceSid && bobSid);

    const direct = await alice.page.evaluate(
      ([token, other]) => app.call("/api/conversations", { method: "POST", token, body: { type: "direct", participantIds: [other] } }),
      [refreshed.token, bobUp.user.id],
    );
    assert.equal(direct.status, 201, JSON.stringify(direct.body));
    const conversationId = direct.body.id;
    for (const user of [alice, bob]) {
      const ack = await user.page.evaluate((id) => app.emit("subscribe", { conversationId: id }), conversationId);
      assert.equal(ack.ok, true, JSON.stringify(ack));
    }

    await bob.page.evaluate((id) => app.emit("typing:start", { conversationId: id }), conversationId);
    const typing = await alice.page.evaluate((id) => app.waitFor("typing:started", id), conversationId);
    assert.equal(typing.userId, bobUp.user.id);

    const sent = await alice.page.evaluate(
      (id) => app.emit("message:send", { conversationId: id, content: "hello from Chromium", clientMessageId: crypto.randomUUID() }),
      conversationId,
    );
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const received = await bob.page.evaluate(() => app.waitFor("message:received", "hello from Chromium"));
    assert.equal(received.message.senderId, signedUp.user.id);

    const read = await bob.page.evaluate(
      ([id, messageId]) => app.emit("receipt:read", { conversationId: id, messageId }),
      [conversationId, received.message.id],
    );
    assert.equal(read.ok, true, JSON.stringify(read));
    const receipt = await alice.page.evaluate((messageId) => app.waitFor("receipt:updated", messageId), received.message.id);
    assert.equal(receipt.userId, bobUp.user.id);

    // The Admin UI, unmodified, from the npm package's ui/dist, sees both browsers' sockets.
    await adminUiShows(browser, {
      page: `${ALLOWED}/admin-ui/`, api: API, user: USER, password: PASSWORD,
      sids: [aliceSid, bobSid], screenshot: "admin-ui-single-node.png",
    });

    assert.equal(await alice.page.evaluate((token) => app.logout(token), refreshed.token), 204);
    const revoked = await alice.page.evaluate(() => app.waitFor("auth:error"));
    assert.equal(revoked.code, "TOKEN_REVOKED");
    await alice.page.evaluate(() => app.waitFor("disconnect"));
    assert.equal(await alice.page.evaluate(() => app.connected()), false, "logout ends the socket");
    const again = await alice.page.evaluate(() => app.refresh());
    assert.equal(again.status, 401, "the refresh cookie is gone with the session");
    assert.equal(await bob.page.evaluate(() => app.connected()), true, "the other user stays");
  } finally {
    await alice.context.close();
    await bob.context.close();
  }
});

test("a page on an origin not in CORS_ORIGINS is refused, for REST and for Socket.IO", async () => {
  const stranger = await appPage(DISALLOWED);
  try {
    const probe = await stranger.page.evaluate(() => app.probe());
    assert.match(String(probe.rest), /^refused/, JSON.stringify(probe));
    assert.match(probe.socketio, /^refused/, JSON.stringify(probe));
    const allowed = await appPage(ALLOWED);
    const control = await allowed.page.evaluate(() => app.probe());
    assert.equal(control.rest, 401, "the allowed origin gets through (and is told to sign in)");
    assert.equal(control.socketio, "connected");
    await allowed.context.close();
  } finally {
    await stranger.context.close();
  }
});

