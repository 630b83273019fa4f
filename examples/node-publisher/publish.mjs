// A tidings publisher in Node with the standard `redis` and `jsonwebtoken` packages,
// from docs/PROTOCOL.md alone: sign a push token (section 2), and poke after a commit
// (section 3.1: compare-and-set on the version key, then PUBLISH).
//   node publish.mjs token USER PROJECT...      print a push token for the user's page
//   node publish.mjs poke PROJECT VERSION [TS]  after the commit (TS: its time, seconds)
// Environment: TIDINGS_PUSH_KEYS (kid:secret,...: the first signs), REDIS_URL,
// TIDINGS_REDIS_SHARDED=1 for SPUBLISH.
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { createClient } from "redis";

// The HMAC key is the secret's text after the first ":", exactly as written.
const [kid, ...rest] = process.env.TIDINGS_PUSH_KEYS.split(",")[0].trim().split(":");
const secret = rest.join(":");

export function pushToken(user, projects, ttl = 600) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "tidings-app", aud: "tidings-push", sub: String(user), prj: projects, iat: now, nbf: now, exp: now + ttl, jti: randomUUID() };
  return jwt.sign(claims, secret, { algorithm: "HS256", keyid: kid });
}

// Set the key only if the version is newer (never backwards); answer what it holds now.
const CAS = `local raw = redis.call('GET', KEYS[1])
local cur = -1
if raw and string.match(raw, '^%d+$') and (#raw < 16 or (#raw == 16 and raw <= '9007199254740992')) then cur = tonumber(raw) end
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', 60) return ARGV[1] end
return raw`;

export async function poke(redis, project, version, ts = Date.now() / 1000) {
  const stored = await redis.eval(CAS, { keys: [`tidings:version:{${project}}`], arguments: [String(version)] });
  if (Number(stored) > version) return false; // a later version is out: this poke is stale
  const send = process.env.TIDINGS_REDIS_SHARDED === "1" ? "sPublish" : "publish";
  await redis[send](`tidings:project:{${project}}`, JSON.stringify({ type: "poke", project, version, ts }));
  return true;
}

const [command, ...args] = process.argv.slice(2);
if (command === "token") console.log(pushToken(Number(args[0]), args.slice(1).map(Number)));
if (command === "poke") {
  const redis = await createClient({ url: process.env.REDIS_URL }).connect();
  try {
    console.log((await poke(redis, Number(args[0]), Number(args[1]), args[2] ? Number(args[2]) : undefined)) ? "published" : "stale");
  } finally {
    await redis.close();
  }
}
