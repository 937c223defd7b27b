// The Node stack Parley is measured against (issue 20): how a team would write the chat backend
// of SPEC.md with socket.io 4 + pg, restricted to what the load generator speaks:
//
//   POST /api/auth/register · POST /api/auth/login · GET /api/auth/me
//   POST /api/conversations (direct, group) · POST /api/conversations/:id/messages
//   GET /health/ready
//   namespace /chat: `auth.token` in the handshake, `sync:complete` once connected,
//   `message:send` with an ack after the commit, `message:received` to the other participants
//
// It is a benchmark peer, not a second implementation: no replay, typing, presence, receipts,
// unread counts or rate limits. Every message is one PostgreSQL transaction (check membership
// and bump the conversation's seq, insert deduplicated on (sender, clientMessageId), commit),
// then the ack and one room broadcast. With REDIS_URL, @socket.io/redis-adapter carries the
// broadcasts between replicas.
//
// Environment: PORT (3000), HOST (127.0.0.1), DATABASE_URL, JWT_SECRET (shared with Parley, so
// the generator's tokens work on both), REDIS_URL and REDIS_KEY_PREFIX (optional), PG_POOL (20).

'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { promisify } = require('node:util');

const jwt = require('jsonwebtoken');
const { Pool } = require('pg');
const { Server } = require('socket.io');

const scrypt = promisify(crypto.scrypt);

const config = {
  port: Number(process.env.PORT || 3000),
  host: process.env.HOST || '127.0.0.1',
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/parley_peer',
  jwtSecret: process.env.JWT_SECRET,
  redisUrl: process.env.REDIS_URL,
  redisPrefix: process.env.REDIS_KEY_PREFIX || 'parley-peer',
  poolSize: Number(process.env.PG_POOL || 20),
  tokenTtlSecs: 86400,
};
if (!config.jwtSecret) {
  console.error('JWT_SECRET is required');
  process.exit(1);
}

const db = new Pool({ connectionString: config.databaseUrl, max: config.poolSize });

/** An error that becomes a 4xx answer or an error ack. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- accounts -------------------------------------------------------------------------------

async function hashPassword(password) {
  const salt = crypto.randomBytes(16);
  const key = await scrypt(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${key.toString('base64')}`;
}

async function passwordMatches(password, stored) {
  const [scheme, salt, key] = String(stored || '').split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length);
  return crypto.timingSafeEqual(expected, actual);
}

function issueToken(userId) {
  return jwt.sign({ sub: userId, sid: crypto.randomUUID(), jti: crypto.randomUUID() }, config.jwtSecret, {
    algorithm: 'HS256',
    expiresIn: config.tokenTtlSecs,
  });
}

/** The user id of a valid access token, or null. */
function userOf(token) {
  if (typeof token !== 'string' || token === '') return null;
  try {
    const claims = jwt.verify(token, config.jwtSecret, { algorithms: ['HS256'] });
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

const publicUser = (row) => ({ id: row.id, email: row.email, displayName: row.display_name });

async function register(body) {
  const email = String(body.email || '').trim().toLowerCase();
  const password = String(body.password || '');
  const displayName = String(body.displayName || email.split('@')[0]);
  if (!email.includes('@') || password.length < 8) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'an email and a password of at least 8 characters');
  }
  const hash = await hashPassword(password);
  const { rows } = await db.query(
    `INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, $3, $4)
     ON CONFLICT (email) DO NOTHING RETURNING id, email, display_name`,
    [crypto.randomUUID(), email, displayName, hash],
  );
  if (rows.length === 0) throw new ApiError(409, 'CONFLICT', 'email already registered');
  return { status: 201, body: { user: publicUser(rows[0]), accessToken: issueToken(rows[0].id) } };
}

async function login(body) {
  const email = String(body.email || '').trim().toLowerCase();
  const { rows } = await db.query('SELECT id, email, display_name, password_hash FROM users WHERE email = $1', [email]);
  if (rows.length === 0 || !(await passwordMatches(String(body.password || ''), rows[0].password_hash))) {
    throw new ApiError(401, 'UNAUTHORIZED', 'wrong email or password');
  }
  return { status: 200, body: { user: publicUser(rows[0]), accessToken: issueToken(rows[0].id) } };
}

async function me(userId) {
  const { rows } = await db.query('SELECT id, email, display_name FROM users WHERE id = $1', [userId]);
  if (rows.length === 0) throw new ApiError(404, 'NOT_FOUND', 'no such user');
  return { status: 200, body: publicUser(rows[0]) };
}

// ---- conversations --------------------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function createConversation(userId, body) {
  const type = body.type;
  const others = Array.isArray(body.participantIds) ? [...new Set(body.participantIds)].filter((id) => id !== userId) : [];
  if (!['direct', 'group'].includes(type) || others.length === 0 || !others.every((id) => UUID.test(id))) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'type direct|group and participantIds');
  }
  if (type === 'direct' && others.length !== 1) throw new ApiError(400, 'VALIDATION_ERROR', 'a direct conversation has one peer');
  if (others.length > 999) throw new ApiError(400, 'VALIDATION_ERROR', 'at most 1000 participants');
  const members = [userId, ...others];
  const client = await db.connect();
  let id;
  try {
    await client.query('BEGIN');
    const known = await client.query('SELECT count(*)::int AS n FROM users WHERE id = ANY($1::uuid[])', [members]);
    if (known.rows[0].n !== members.length) throw new ApiError(404, 'NOT_FOUND', 'unknown participant');
    if (type === 'direct') {
      const existing = await client.query(
        `SELECT c.id FROM conversations c
           JOIN participants a ON a.conversation_id = c.id AND a.user_id = $1
           JOIN participants b ON b.conversation_id = c.id AND b.user_id = $2
          WHERE c.type = 'direct' LIMIT 1`,
        members,
      );
      if (existing.rows.length > 0) {
        await client.query('COMMIT');
        return { status: 200, body: { id: existing.rows[0].id, type, participantIds: members } };
      }
    }
    id = crypto.randomUUID();
    await client.query('INSERT INTO conversations (id, type, title, created_by) VALUES ($1, $2, $3, $4)', [
      id,
      type,
      type === 'group' ? String(body.title || 'Group') : null,
      userId,
    ]);
    await client.query(
      'INSERT INTO participants (conversation_id, user_id) SELECT $1, unnest($2::uuid[])',
      [id, members],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  // The members' sockets, on every replica, join the conversation's room.
  chat.in(members.map((member) => `user:${member}`)).socketsJoin(`conversation:${id}`);
  return { status: 201, body: { id, type, title: body.title || null, participantIds: members } };
}

// ---- messages -------------------------------------------------------------------------------

/**
 * Stores one message in one transaction and returns it, with `created` false when the
 * (sender, clientMessageId) pair was already stored (the original comes back, nothing is
 * broadcast again).
 */
async function storeMessage(userId, conversationId, input) {
  const clientMessageId = input && input.clientMessageId;
  const content = input && input.content;
  if (typeof conversationId !== 'string' || !UUID.test(conversationId)) throw new ApiError(400, 'VALIDATION_ERROR', 'conversationId');
  if (typeof clientMessageId !== 'string' || clientMessageId.length === 0 || clientMessageId.length > 100) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'clientMessageId');
  }
  if (typeof content !== 'string' || content.length === 0 || content.length > 10000) {
    throw new ApiError(400, 'VALIDATION_ERROR', 'content');
  }
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const bumped = await client.query(
      `UPDATE conversations SET last_seq = last_seq + 1, updated_at = now()
        WHERE id = $1 AND EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2)
        RETURNING last_seq`,
      [conversationId, userId],
    );
    if (bumped.rows.length === 0) throw new ApiError(404, 'NOT_FOUND', 'no such conversation');
    const inserted = await client.query(
      `INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, content)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (sender_id, client_message_id) DO NOTHING
       RETURNING id, conversation_id, seq, sender_id, client_message_id, content, created_at`,
      [crypto.randomUUID(), conversationId, bumped.rows[0].last_seq, userId, clientMessageId, content],
    );
    if (inserted.rows.length === 0) {
      await client.query('ROLLBACK');
      const original = await db.query(
        `SELECT id, conversation_id, seq, sender_id, client_message_id, content, created_at
           FROM messages WHERE sender_id = $1 AND client_message_id = $2`,
        [userId, clientMessageId],
      );
      return { message: wireMessage(original.rows[0]), created: false };
    }
    await client.query('COMMIT');
    return { message: wireMessage(inserted.rows[0]), created: true };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function wireMessage(row) {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    senderId: row.sender_id,
    clientMessageId: row.client_message_id,
    content: row.content,
    seq: Number(row.seq),
    type: 'text',
    createdAt: row.created_at.toISOString(),
  };
}

/** Stores and broadcasts; `except` is the sending socket, which gets the ack instead. */
async function send(userId, conversationId, input, except) {
  const { message, created } = await storeMessage(userId, conversationId, input);
  if (created) {
    const room = chat.to(`conversation:${conversationId}`);
    (except ? room.except(except) : room).emit('message:received', { message });
  }
  return message;
}

// ---- HTTP -----------------------------------------------------------------------------------

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1 << 20) {
        reject(new ApiError(413, 'PAYLOAD_TOO_LARGE', 'body over 1 MiB'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new ApiError(400, 'VALIDATION_ERROR', 'invalid JSON'));
      }
    });
    req.on('error', reject);
  });
}

function bearer(req) {
  const header = req.headers.authorization || '';
  const userId = header.startsWith('Bearer ') ? userOf(header.slice(7)) : null;
  if (!userId) throw new ApiError(401, 'UNAUTHORIZED', 'a valid bearer token is required');
  return userId;
}

async function route(req) {
  const url = new URL(req.url, 'http://peer');
  const key = `${req.method} ${url.pathname}`;
  if (key === 'GET /health/ready') {
    await db.query('SELECT 1');
    if (redis) await redis.pub.ping();
    return { status: 200, body: { status: 'ready' } };
  }
  if (key === 'POST /api/auth/register') return register(await readJson(req));
  if (key === 'POST /api/auth/login') return login(await readJson(req));
  if (key === 'GET /api/auth/me') return me(bearer(req));
  if (key === 'POST /api/conversations') {
    const userId = bearer(req);
    return createConversation(userId, await readJson(req));
  }
  const posted = req.method === 'POST' && url.pathname.match(/^\/api\/conversations\/([^/]+)\/messages$/);
  if (posted) {
    const userId = bearer(req);
    return { status: 201, body: await send(userId, posted[1], await readJson(req), null) };
  }
  throw new ApiError(404, 'NOT_FOUND', 'no such route');
}

const server = http.createServer((req, res) => {
  route(req)
    .catch((err) => {
      if (err instanceof ApiError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
      console.error(err);
      return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } };
    })
    .then(({ status, body }) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
});

// ---- Socket.IO ------------------------------------------------------------------------------

const io = new Server(server);
const chat = io.of('/chat');
let redis = null;

chat.use((socket, next) => {
  const userId = userOf(socket.handshake.auth && socket.handshake.auth.token);
  if (!userId) {
    const err = new Error('UNAUTHORIZED');
    err.data = { code: 'UNAUTHORIZED' };
    return next(err);
  }
  socket.data.userId = userId;
  next();
});

chat.on('connection', async (socket) => {
  const { userId } = socket.data;
  socket.on('message:send', async (input, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    try {
      const message = await send(userId, input && input.conversationId, input, socket.id);
      reply({ ok: true, data: { clientMessageId: message.clientMessageId, messageId: message.id, seq: message.seq, timestamp: message.createdAt } });
    } catch (err) {
      if (!(err instanceof ApiError)) console.error(err);
      const code = err instanceof ApiError ? err.code : 'INTERNAL';
      reply({ ok: false, error: { code, message: err.message } });
    }
  });
  try {
    const { rows } = await db.query('SELECT conversation_id FROM participants WHERE user_id = $1', [userId]);
    socket.join([`user:${userId}`, ...rows.map((row) => `conversation:${row.conversation_id}`)]);
    socket.emit('sync:complete', { messages: [], conversations: [], truncated: [] });
  } catch (err) {
    console.error(err);
    socket.disconnect(true);
  }
});

async function main() {
  await db.query(fs.readFileSync(path.join(__dirname, 'schema.sql'), 'utf8'));
  if (config.redisUrl) {
    const Redis = require('ioredis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = new Redis(config.redisUrl);
    const sub = pub.duplicate();
    redis = { pub, sub };
    io.adapter(createAdapter(pub, sub, { key: config.redisPrefix }));
  }
  server.listen(config.port, config.host, () => console.log(`peer listening on ${config.host}:${config.port}`));
}

function shutdown() {
  io.close();
  db.end().finally(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
