// Core sync with stock clients: the real binary, real `yjs` documents and `y-websocket`
// providers under Node. One server per file; each test uses its own document names.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, waitFor, sleep } from './harness.mjs'

let server
const clients = []
const client = (doc, opts) => { const c = connectClient(server.ws, doc, opts); clients.push(c); return c }

before(async () => { server = await startServer() })
after(async () => {
  for (const c of clients) c.destroy()
  await server.cleanup()
})

// Two clients: an edit on one appears on the other.
test('two clients sync a text edit', async () => {
  const a = client('sync/two'); const b = client('sync/two')
  await a.waitSynced(); await b.waitSynced()
  a.doc.getText('t').insert(0, 'hello')
  await waitFor(() => b.text() === 'hello', 5000, 'b sees the edit')
})

// Three clients insert at the same position in the same tick; every insert survives and all
// three end with the same text.
test('three concurrent inserts converge', async () => {
  const cs = [client('sync/three'), client('sync/three'), client('sync/three')]
  for (const c of cs) await c.waitSynced()
  cs.forEach((c, i) => c.doc.getText('t').insert(0, `<${i}>`))
  await waitFor(() => cs.every((c) => c.text().length === 9 && c.text() === cs[0].text()), 5000, 'convergence')
  for (const i of [0, 1, 2]) assert.ok(cs[0].text().includes(`<${i}>`))
})

// A client that joins later receives the whole document.
test('a late joiner gets the full state', async () => {
  const a = client('sync/late'); await a.waitSynced()
  a.doc.getText('t').insert(0, 'early words')
  a.doc.getMap('m').set('k', 42)
  await sleep(100)
  const late = client('sync/late'); await late.waitSynced()
  await waitFor(() => late.text() === 'early words' && late.doc.getMap('m').get('k') === 42, 5000, 'late joiner state')
})

// Presence appears on the other client and disappears when its owner disconnects.
test('awareness appears and disappears', async () => {
  const a = client('sync/awareness'); const b = client('sync/awareness')
  await a.waitSynced(); await b.waitSynced()
  a.provider.awareness.setLocalStateField('user', { name: 'Ada', color: '#e91e63' })
  const aId = a.doc.clientID
  await waitFor(() => b.provider.awareness.getStates().get(aId)?.user?.name === 'Ada', 5000, 'awareness seen')
  a.destroy()
  await waitFor(() => !b.provider.awareness.getStates().has(aId), 5000, 'awareness removed')
})

// A client goes offline; both sides edit; after reconnecting both hold every edit.
test('offline edits converge after reconnecting', async () => {
  const a = client('sync/offline'); const b = client('sync/offline')
  await a.waitSynced(); await b.waitSynced()
  a.doc.getText('t').insert(0, 'base ')
  await waitFor(() => b.text() === 'base ', 5000, 'base synced')
  a.provider.disconnect()
  await waitFor(() => !a.provider.wsconnected, 5000, 'a offline')
  a.doc.getText('t').insert(5, 'from-a ')
  b.doc.getText('t').insert(0, 'from-b ')
  await sleep(100)
  assert.ok(!b.text().includes('from-a'))
  a.provider.connect()
  await waitFor(() => a.text() === b.text() && a.text().includes('from-a') && a.text().includes('from-b'), 5000, 'convergence')
})

// Edits in one room never reach another.
test('rooms are isolated', async () => {
  const a = client('sync/iso-a'); const b = client('sync/iso-b')
  await a.waitSynced(); await b.waitSynced()
  a.doc.getText('t').insert(0, 'only in a')
  const a2 = client('sync/iso-a'); await a2.waitSynced()
  await waitFor(() => a2.text() === 'only in a', 5000, 'same room receives')
  await sleep(200)
  assert.equal(b.text(), '')
})

// A 1 MiB insert reaches the other client.
test('a 1 MiB insert syncs', async () => {
  const a = client('sync/big'); const b = client('sync/big')
  await a.waitSynced(); await b.waitSynced()
  const big = 'x'.repeat(1 << 20)
  a.doc.getText('t').insert(0, big)
  await waitFor(() => b.text().length === big.length, 15000, '1 MiB on b')
})

// Fifty rooms at once, two clients each, every pair syncs.
test('fifty rooms at once', async () => {
  const pairs = []
  for (let i = 0; i < 50; i++) pairs.push([client(`fifty/${i}`), client(`fifty/${i}`)])
  await Promise.all(pairs.flat().map((c) => c.waitSynced(10000)))
  pairs.forEach(([a], i) => a.doc.getText('t').insert(0, `room ${i}`))
  await waitFor(() => pairs.every(([, b], i) => b.text() === `room ${i}`), 15000, 'all fifty pairs')
  const stats = await (await fetch(`${server.http}/api/stats`)).json()
  assert.ok(stats.rooms >= 50, JSON.stringify(stats).slice(0, 200))
  for (const [a, b] of pairs) { a.destroy(); b.destroy() }
})
