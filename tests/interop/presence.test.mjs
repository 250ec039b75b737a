// Presence with stock y-websocket providers through the moments users hit: a dropped socket
// that reconnects, and others publishing presence fast. Real npm clients against the real binary.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { startServer, connectClient, rawSocket, waitFor, sleep, syncUpdate, Y, BIN } from './harness.mjs'
import { pageSocket, openDocument } from './hocuspocus.mjs'
import * as encoding from 'lib0/encoding'

const SECRET = 'presence-test-secret'
const mint = (sub, role) =>
  execFileSync(BIN, ['token', '--sub', sub, '--doc', `presence/**=${role}`], {
    env: { ...process.env, TANDEM_JWT_SECRET: SECRET }
  }).toString().trim()

/** Per-socket message rate limit of the servers below (the default, stated to compare with). */
const RATE_LIMIT = 500
/** What a flooder sends per second: under RATE_LIMIT, so the server lets it stay. */
const FLOOD_RATE = 450
/** Frames per second an honest client may send while others flood: the room's coalesced
 * presence broadcast (one frame per 50 ms) echoed back, plus its own traffic. */
const HONEST_RATE_MAX = 30

let open // development mode: everyone is `anonymous`
let authed // --jwt-secret: every socket has a token, flooders read-only ones
const clients = []
const client = (server, doc, token) => {
  const c = connectClient(server.ws, doc, { params: token ? { token } : {} })
  clients.push(c)
  return c
}

before(async () => {
  open = await startServer()
  authed = await startServer({ env: { TANDEM_JWT_SECRET: SECRET } })
})
after(async () => {
  for (const c of clients) c.destroy()
  await open.cleanup()
  await authed.cleanup()
})

/** Counts the frames a provider's socket sends, across reconnects. */
function countSent (provider) {
  const counter = { n: 0 }
  const wrap = () => {
    const ws = provider.ws
    if (!ws || ws.__counted) return
    ws.__counted = true
    const send = ws.send.bind(ws)
    ws.send = (data, ...rest) => { counter.n++; return send(data, ...rest) }
  }
  provider.on('status', wrap)
  wrap()
  return counter
}

// A client that leaves without removing its own presence is gone from the others' presence at
// once (the server broadcasts the removal of every client ID the departed socket or document
// spoke for), not after y-protocols' 30 s timeout: a socket cut without a close frame, a
// Hocuspocus page that closes one document on a socket it keeps, and one that drops its socket.
test('a departed client leaves the others\' presence within a few seconds, however it leaves', async () => {
  const doc = 'presence/departures'
  const watcher = client(open, doc)
  const names = () => [...watcher.provider.awareness.getStates().entries()]
    .filter(([id]) => id !== watcher.doc.clientID).map(([, s]) => s.user?.name).filter(Boolean).sort()
  await watcher.waitSynced()
  const within = async (ms, what, fn) => {
    const started = Date.now()
    await waitFor(fn, ms, what)
    return Date.now() - started
  }

  // y-websocket, its TCP connection cut: no awareness removal, no close frame.
  const cut = client(open, doc)
  cut.provider.awareness.setLocalStateField('user', { name: 'Cut' })
  await within(5000, 'Cut present', () => names().includes('Cut'))
  cut.provider.shouldConnect = false
  cut.provider.ws.terminate()
  const cutGone = await within(5000, 'Cut gone', () => !names().includes('Cut'))

  // Hocuspocus: one document closed (CLOSE message) on a socket that stays for another.
  const socket = pageSocket(open)
  const kept = openDocument(socket, 'presence/other', { user: 'Elsewhere' })
  const closed = openDocument(socket, doc, { user: 'Closer' })
  try {
    await within(5000, 'Closer present', () => names().includes('Closer'))
    closed.provider.detach() // sends CLOSE for this document alone, no awareness removal
    const closerGone = await within(5000, 'Closer gone', () => !names().includes('Closer'))

    // Hocuspocus: the whole socket dropped without a word.
    const again = openDocument(socket, doc, { user: 'Dropper' })
    await within(5000, 'Dropper present', () => names().includes('Dropper'))
    socket.shouldConnect = false
    socket.webSocket.terminate()
    const dropperGone = await within(5000, 'Dropper gone', () => !names().includes('Dropper'))
    assert.deepEqual(names(), [])
    console.log(`departures seen after ${cutGone} ms (cut), ${closerGone} ms (document closed), ${dropperGone} ms (socket dropped)`)
    again.provider.destroy()
  } finally {
    kept.provider.destroy()
    closed.doc.destroy()
    socket.destroy()
  }
})

// A provider with presence whose socket is terminated (a Wi-Fi change) comes back: its presence
// reappears for the other client, and it is not shut out with 4429 by an echo loop.
test('presence comes back after a dropped connection', async () => {
  const ada = client(open, 'presence/drop')
  const bob = client(open, 'presence/drop')
  await ada.waitSynced(); await bob.waitSynced()
  ada.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  const seesAda = () => bob.provider.awareness.getStates().get(ada.doc.clientID)?.user?.name === 'Ada'
  await waitFor(seesAda, 5000, 'bob sees ada')
  const closes = []
  ada.provider.on('connection-close', (e) => closes.push(e?.code))
  ada.provider.ws.terminate()
  await waitFor(() => !seesAda(), 40000, 'bob sees ada leave')
  await waitFor(() => ada.provider.wsconnected, 10000, 'ada reconnects')
  await waitFor(seesAda, 5000, 'bob sees ada again')
  const sent = countSent(ada.provider)
  await sleep(2000)
  assert.ok(sent.n < 20, `ada sent ${sent.n} frames in 2 s after reconnecting`)
  assert.ok(!closes.includes(4429), `closes: ${closes}`)
  assert.ok(ada.provider.wsconnected)
  assert.ok(seesAda())
})

/** An awareness frame with one entry per `[clientId, JSON text]` pair, all at `clock`. */
function awarenessFrame (entries, clock) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, entries.length)
  for (const [clientId, json] of entries) {
    encoding.writeVarUint(inner, clientId)
    encoding.writeVarUint(inner, clock)
    encoding.writeVarString(inner, json)
  }
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return encoding.toUint8Array(e)
}

/**
 * Two stock providers with presence per document in `docs`, three raw flooder sockets per
 * document publishing presence for their own client IDs at FLOOD_RATE messages/s each, paced by
 * the clock (not by timer granularity) for `seconds`. Returns what each side sent and suffered.
 * `token(sub, role)` gives a token for the server (or nothing in development mode).
 */
async function presenceFlood (server, { docs, token, flooderRole = 'read', idsPerSocket = 1, sameState = false, updates = false, seconds }) {
  const honest = docs.flatMap((doc) => ['ada', 'bob'].map((name) => ({ name, doc, c: client(server, doc, token(name, 'write')) })))
  for (const h of honest) await h.c.waitSynced()
  for (const h of honest) {
    h.c.provider.awareness.setLocalStateField('user', { name: h.name })
    h.closes = []
    h.c.provider.on('connection-close', (e) => h.closes.push(e?.code))
  }
  const flooderToken = token('eve', flooderRole)
  const query = flooderToken ? `?token=${flooderToken}` : ''
  const flooders = []
  for (const doc of docs) {
    for (let i = 0; i < 3; i++) flooders.push(await rawSocket(server.ws, `${doc}${query}`))
  }
  // A flooder's IDs are its own: 900000 + 100 * socket + k.
  const ids = flooders.map((_, s) => Array.from({ length: idsPerSocket }, (_, k) => 900000 + 100 * s + k))
  const flooderIds = new Set(ids.flat())
  for (const h of honest) h.sent = countSent(h.c.provider)
  const started = Date.now()
  let n = 0
  while (Date.now() - started < seconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * FLOOD_RATE)
    for (; n < due; n++) {
      flooders.forEach((f, s) => {
        if (updates && n % 10 === 0) {
          // A writer's document update (a new client each time, so each one applies).
          const d = new Y.Doc()
          d.getText('t').insert(0, 'x')
          f.send(syncUpdate(Y.encodeStateAsUpdate(d)))
          d.destroy()
        } else {
          f.send(awarenessFrame(ids[s].map((id) => [id, JSON.stringify({ cursor: sameState ? 1 : n })]), n + 1))
        }
      })
    }
    await sleep(1)
  }
  const elapsed = (Date.now() - started) / 1000
  await sleep(500) // let the last echoes and any close arrive
  return {
    elapsed,
    flooderIds,
    flooderRate: n / elapsed,
    flooders,
    honest: honest.map((h) => ({ name: `${h.doc}:${h.name}`, rate: h.sent.n / elapsed, closes: h.closes, c: h.c }))
  }
}

/** Asserts the flood ran at full strength, closed nobody honest, and cost honest clients little. */
async function assertHonestUnharmed (result, what) {
  const rates = result.honest.map((h) => `${h.name} ${h.rate.toFixed(1)}/s`).join(', ')
  console.log(`${what}: flooders ${result.flooderRate.toFixed(0)} msg/s each for ${result.elapsed.toFixed(1)} s; honest clients sent ${rates}`)
  assert.ok(result.flooderRate > FLOOD_RATE * 0.9, `the flood ran at ${result.flooderRate} msg/s`)
  assert.deepEqual(result.flooders.map((f) => f.closed), result.flooders.map(() => null), 'the flooders were under the limit and stayed')
  for (const h of result.honest) {
    assert.deepEqual(h.closes, [], `${h.name} was closed`)
    assert.ok(h.c.provider.wsconnected, `${h.name} is connected`)
    assert.ok(h.rate < HONEST_RATE_MAX, `${h.name} sent ${h.rate.toFixed(1)} frames/s (bound ${HONEST_RATE_MAX}, per-socket limit ${RATE_LIMIT})`)
  }
  // Presence still works: every honest client sees its peer and the flooders of its document.
  for (const h of result.honest) {
    const names = () => [...h.c.provider.awareness.getStates().values()].map((s) => s.user?.name)
    const others = () => [...h.c.provider.awareness.getStates().keys()].filter((id) => result.flooderIds.has(id))
    await waitFor(() => names().includes('ada') && names().includes('bob'), 5000, `${h.name} sees its peer`)
    await waitFor(() => others().length > 0, 5000, `${h.name} sees the flooders`)
  }
}

function release (result) {
  for (const h of result.honest) { h.c.destroy(); clients.splice(clients.indexOf(h.c), 1) }
  for (const f of result.flooders) f.ws.terminate()
}

// The finding as reported: authentication on, three read-only sockets publishing presence for
// their own client IDs at 450 messages/s each (under the 500/s per-socket limit) for 8 s, two
// stock providers with presence in the room. Before the coalesced broadcast every stock client
// echoed each of the 1,350 frames/s it received and was closed with 4429 after about 6 s.
test('fast presence from read-only sockets never closes an honest client', async () => {
  const result = await presenceFlood(authed, { docs: ['presence/flood'], token: mint, seconds: 8 })
  try {
    await assertHonestUnharmed(result, 'read-only flooders, auth on')
    const [ada, bob] = result.honest.map((h) => h.c)
    ada.doc.getText('t').insert(0, 'still here')
    await waitFor(() => bob.text() === 'still here', 5000, 'an edit still syncs')
  } finally {
    release(result)
  }
})

// Neighbours of the finding, shorter: what an honest client sends stays bounded by the room's
// broadcast rate however the flood is shaped.
test('presence floods of every shape cost an honest client at most the broadcast rate', async (t) => {
  const cases = [
    ['the same state every message', authed, mint, { sameState: true }],
    ['16 client IDs in every message of each flooder', authed, mint, { idsPerSocket: 16 }],
    ['writers, with a document update in every tenth message', authed, mint, { flooderRole: 'write', updates: true }],
    ['flooders on three documents at once', authed, mint, { docs: ['presence/a', 'presence/b', 'presence/c'] }],
    ['development mode: everyone is the same anonymous author', open, () => null, {}]
  ]
  for (const [what, server, token, shape] of cases) {
    await t.test(what, async () => {
      const docs = shape.docs || [`presence/${what.replace(/\W+/g, '-')}`]
      const result = await presenceFlood(server, { docs, token, seconds: 4, ...shape })
      try {
        await assertHonestUnharmed(result, what)
      } finally {
        release(result)
      }
    })
  }
})

// A stock client writes back every presence state it receives, and JavaScript can write a state
// back larger than it came: `1e20` (4 bytes) returns as `100000000000000000000` (21). States of
// such numbers from read-only sockets, one just under the frame limit and then twelve at the
// state limit at once, must not make an honest client's echo exceed the frame limit (1009).
test('presence states that grow when echoed never get an honest client closed', async () => {
  const frameMax = 1 << 20
  const server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET }, args: ['--frame-size-max-bytes', String(frameMax)] })
  const numbers = (bytes) => ({ n: Array(Math.floor(bytes / 5)).fill(0) })
  const json = (bytes) => JSON.stringify(numbers(bytes)).replaceAll('0', '1e20')
  const doc = 'presence/echo-growth'
  const honest = ['ada', 'bob'].map((name) => ({ name, c: connectClient(server.ws, doc, { params: { token: mint(name, 'write') } }) }))
  try {
    for (const h of honest) await h.c.waitSynced()
    for (const h of honest) {
      h.c.provider.awareness.setLocalStateField('user', { name: h.name })
      h.closes = []
      h.c.provider.on('connection-close', (e) => h.closes.push(e?.code))
      h.biggest = 0
      const ws = h.c.provider.ws
      const send = ws.send.bind(ws)
      ws.send = (data, ...rest) => { h.biggest = Math.max(h.biggest, data.length); return send(data, ...rest) }
    }
    const token = mint('eve', 'read')
    const flooders = await Promise.all([0, 1, 2].map(() => rawSocket(server.ws, `${doc}?token=${token}`)))
    // One state just under the frame limit: over the state limit, so never relayed.
    flooders[0].send(awarenessFrame([[910000, json(frameMax - 1024)]], 1))
    // Four states of 60 KB from each flooder at once (720 KB, 3.8 MB once echoed).
    flooders.forEach((f, s) => f.send(awarenessFrame([0, 1, 2, 3].map((k) => [920000 + 10 * s + k, json(60000)]), 1)))
    const seen = (h) => [...h.c.provider.awareness.getStates().keys()].filter((id) => id >= 920000 && id < 930000).length
    for (const h of honest) await waitFor(() => seen(h) === 12 || h.closes.length, 10000, `${h.name} sees the twelve states`)
    await sleep(500)
    for (const h of honest) {
      console.log(`${h.name}: largest frame sent ${h.biggest} bytes (frame limit ${frameMax}), closes ${h.closes}`)
      assert.deepEqual(h.closes, [], `${h.name} was closed`)
      assert.ok(h.c.provider.wsconnected)
      assert.ok(h.biggest < frameMax)
      assert.equal(seen(h), 12)
      assert.ok(!h.c.provider.awareness.getStates().has(910000), 'a state over the limit is not relayed')
    }
    assert.deepEqual(flooders.map((f) => f.closed), [null, null, null])
    for (const f of flooders) f.ws.terminate()
  } finally {
    for (const h of honest) h.c.destroy()
    await server.cleanup()
  }
})
