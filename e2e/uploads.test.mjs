// Uploads with the npm socket.io-client and fetch (SPEC §4.3): a picture uploaded as a
// browser's FormData, attached to a message by `uploadId`, and downloaded by the peer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { deflateSync } from "node:zlib";
import { BASE, api, connect, emitWithAck, register, waitFor } from "./lib.mjs";

/** A real PNG of `width` × `height` RGB pixels (a gradient), built by hand. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rows.set([x % 256, y % 256, 99], y * (1 + width * 3) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

test("a picture uploaded, attached by uploadId over socket.io, and downloaded by the peer", async () => {
  const [ann, bob] = [await register("Ann"), await register("Bob")];
  const created = await api("/api/conversations", { method: "POST", token: ann.token, body: { type: "direct", participantIds: [bob.id] } });
  const conversationId = created.body.id;
  const [a, b] = [await connect(ann.token), await connect(bob.token)];

  // As a browser does it: FormData with a Blob whose declared type is a lie.
  const picture = png(640, 360);
  const form = new FormData();
  form.append("file", new Blob([picture], { type: "text/plain" }), "holiday.png");
  const response = await fetch(`${BASE}/api/uploads`, { method: "POST", headers: { authorization: `Bearer ${ann.token}` }, body: form });
  const upload = await response.json();
  assert.equal(response.status, 201, JSON.stringify(upload));
  assert.equal(upload.contentType, "image/png");
  assert.equal(upload.sha256, sha256(picture));
  assert.deepEqual([upload.width, upload.height], [640, 360]);

  const received = waitFor(b.socket, "message:received");
  const ack = await emitWithAck(a.socket, "message:send", {
    conversationId, clientMessageId: crypto.randomUUID(), contentType: "image", media: [{ uploadId: upload.id }],
  });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const { message } = await received;
  const [item] = message.media;
  assert.equal(item.uploadId, upload.id);
  assert.equal(item.url, `/api/uploads/${upload.id}`);
  assert.equal(item.type, "image");
  assert.deepEqual([item.width, item.height], [640, 360]);

  // The peer downloads it, whole and then a range, and the thumbnail.
  const download = await fetch(`${BASE}${item.url}`, { headers: { authorization: `Bearer ${bob.token}` } });
  assert.equal(download.status, 200);
  assert.equal(download.headers.get("content-type"), "image/png");
  assert.equal(download.headers.get("x-content-type-options"), "nosniff");
  assert.equal(sha256(Buffer.from(await download.arrayBuffer())), upload.sha256);
  const range = await fetch(`${BASE}${item.url}`, { headers: { authorization: `Bearer ${bob.token}`, range: "bytes=0-7" } });
  assert.equal(range.status, 206);
  assert.deepEqual(Buffer.from(await range.arrayBuffer()), picture.subarray(0, 8));
  const thumbnail = await fetch(`${BASE}${item.thumbnailUrl}`, { headers: { authorization: `Bearer ${bob.token}` } });
  assert.equal(thumbnail.status, 200);
  assert.equal(thumbnail.headers.get("content-type"), "image/jpeg");

  // A stranger gets what an unknown id gets.
  const cat = await register("Cat");
  const stranger = await fetch(`${BASE}${item.url}`, { headers: { authorization: `Bearer ${cat.token}` } });
  assert.equal(stranger.status, 404);
  a.socket.close();
  b.socket.close();
});
