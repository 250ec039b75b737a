// Presence with stock y-websocket providers through the moments users hit: a dropped socket
// that reconnects, and others publishing presence fast. Real npm clients against the real binary.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, rawSocket, waitFor, sleep } from './harness.mjs'
import * as encoding from 'lib0/encoding'

let server
const clients = []
const client = (doc) => { const c = connectClient(server.ws, doc); clients.push(c); return c }

before(async () => { server = await startServer() })
after(async () => { for (const c of clients) c.destroy(); await server.cleanup() })

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

// A provider with presence whose socket is terminated (a Wi-Fi change) comes back: its presence
// reappears for the other client, and it is not shut out with 4429 by an echo loop.
test('presence comes back after a dropped connection', async () => {
  const ada = client('presence/drop')
  const bob = client('presence/drop')
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

/** An awareness frame for one client ID. */
function awarenessFrame (clientId, clock, state) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, JSON.stringify(state))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return encoding.toUint8Array(e)
}

// Three sockets publishing presence at about 450 messages/s each (under the per-socket limit)
// must not get the stock clients in the room closed: what the clients echo is bounded by the
// room's coalesced broadcast rate.
test('fast presence from others never closes an honest client', async () => {
  const ada = client('presence/flood')
  const bob = client('presence/flood')
  await ada.waitSynced(); await bob.waitSynced()
  ada.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  bob.provider.awareness.setLocalStateField('user', { name: 'Bob' })
  const closes = []
  for (const c of [ada, bob]) c.provider.on('connection-close', (e) => closes.push(e?.code))
  const flooders = await Promise.all([1, 2, 3].map(() => rawSocket(server.ws, 'presence/flood')))
  const until = Date.now() + 6000
  let clock = 0
  while (Date.now() < until) {
    clock++
    flooders.forEach((f, i) => f.send(awarenessFrame(900000 + i, clock, { cursor: clock })))
    await sleep(2) // ~450 frames/s per socket with timer granularity
  }
  await sleep(500)
  assert.deepEqual(closes, [], 'no honest client was closed')
  assert.ok(ada.provider.wsconnected && bob.provider.wsconnected)
  ada.doc.getText('t').insert(0, 'still here')
  await waitFor(() => bob.text() === 'still here', 5000, 'an edit still syncs')
  for (const f of flooders) f.ws.terminate()
})
