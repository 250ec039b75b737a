// The stock @hocuspocus/provider (4.x, as Tiptap uses it) against the real binary, through the
// moments users live: two pages editing, several documents on one page's socket, a dropped
// connection, a server killed after it acknowledged, a reload while offline, presence on all the
// time, a y-websocket client in the same document, and per-document tokens.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, freeAddr, waitFor, sleep, mintToken, signToken, Y } from './harness.mjs'
import { pageSocket, openDocument } from './hocuspocus.mjs'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

/** Destroys providers, then their sockets, whatever the test's outcome. */
function cleanup (...things) {
  for (const t of things.flat()) {
    try { t.destroy() } catch {}
  }
}

// Two pages (two sockets) edit one document: each sees the other's text and presence, and
// every edit is acknowledged (the provider's unsyncedChanges back to 0).
test('two pages edit one document; every edit is acknowledged', async () => {
  const server = await startServer()
  const [s1, s2] = [pageSocket(server), pageSocket(server)]
  const a = openDocument(s1, 'notes/1', { user: 'Ada' })
  const b = openDocument(s2, 'notes/1', { user: 'Bob' })
  try {
    await a.settled(); await b.settled()
    assert.equal(a.seen.scope, 'read-write')
    for (let i = 0; i < 20; i++) a.type(`a${i} `)
    b.type('from Bob. ')
    await a.settled(); await b.settled()
    await waitFor(() => a.text() === b.text() && a.text().includes('a19') && a.text().includes('Bob'), 5000, 'convergence')
    await waitFor(() => a.others().includes('Bob') && b.others().includes('Ada'), 5000, 'presence both ways')
    const stats = await (await fetch(`${server.http}/api/stats`)).json()
    assert.equal(stats.attachments.hocuspocus, 2, JSON.stringify(stats))
  } finally {
    cleanup(a, b, s1, s2)
    await server.cleanup()
  }
})

// Three documents multiplexed on one page's socket stay apart; closing one of them (its
// provider destroyed: a CLOSE message) takes its presence away from the others while the same
// socket keeps serving the remaining two.
test('three documents on one socket stay apart; closing one leaves the others serving', async () => {
  const server = await startServer()
  const [s1, s2] = [pageSocket(server), pageSocket(server)]
  const names = ['docs/a', 'docs/b', 'docs/c']
  const mine = names.map((n) => openDocument(s1, n, { user: 'Ada' }))
  const theirs = names.map((n) => openDocument(s2, n, { user: 'Bob' }))
  try {
    for (const d of [...mine, ...theirs]) await d.settled()
    mine.forEach((d, i) => d.type(`only ${names[i]}`))
    for (const [i, d] of theirs.entries()) {
      await waitFor(() => d.text() === `only ${names[i]}`, 5000, `${names[i]} on the other page`)
    }
    await waitFor(() => theirs.every((d) => d.others().includes('Ada')), 5000, 'presence in every document')
    mine[1].destroy()
    await waitFor(() => !theirs[1].others().includes('Ada'), 5000, 'presence leaves with its document')
    mine[0].type(' still here'); mine[2].type(' and here')
    await waitFor(() => theirs[0].text().endsWith('still here') && theirs[2].text().endsWith('and here'), 5000, 'the socket still serves a and c')
    assert.ok(theirs[0].others().includes('Ada') && theirs[2].others().includes('Ada'), 'presence stays in a and c')
    await mine[0].settled(); await mine[2].settled()
    assert.equal(s1.status, 'connected')
  } finally {
    cleanup(mine, theirs, s1, s2)
    await server.cleanup()
  }
})

// The connection drops (the socket is cut under the page) and comes back: what was typed
// meanwhile arrives, and presence returns.
test('a dropped connection comes back with the edits typed meanwhile', async () => {
  const server = await startServer()
  const [s1, s2] = [pageSocket(server), pageSocket(server)]
  const a = openDocument(s1, 'notes/drop', { user: 'Ada' })
  const b = openDocument(s2, 'notes/drop', { user: 'Bob' })
  try {
    await a.settled(); await b.settled()
    s1.webSocket.terminate()
    a.type('typed while the socket was down')
    await waitFor(() => b.text() === 'typed while the socket was down', 8000, 'the offline edit after the reconnect')
    await a.settled(8000)
    await waitFor(() => b.others().includes('Ada'), 5000, 'presence after the reconnect')
  } finally {
    cleanup(a, b, s1, s2)
    await server.cleanup()
  }
})

// kill -9 right after the edits are acknowledged loses none of them: a page opened after the
// restart gets them from the store, and the page that stayed open reconnects by itself and
// carries on.
test('kill -9 after acknowledgement loses nothing; pages reconnect by themselves', async () => {
  const server = await startServer({ listen: await freeAddr() })
  const s1 = pageSocket(server)
  const a = openDocument(s1, 'notes/durable', { user: 'Ada' })
  let s2, late
  try {
    await a.settled()
    for (let i = 0; i < 50; i++) a.type(`${i},`)
    await a.settled()
    const written = a.text()
    await server.stop('SIGKILL')
    await server.restart()
    s2 = pageSocket(server)
    late = openDocument(s2, 'notes/durable', { user: 'Bob' })
    await late.settled()
    assert.equal(late.text(), written)
    await a.settled(10000)
    a.type('after')
    await waitFor(() => late.text() === written + 'after', 5000, 'the old page edits again')
  } finally {
    cleanup(a, late ?? [], s1, s2 ?? [])
    await server.cleanup()
  }
})

// A page reloads while the server is down: its edits were kept locally (what y-indexeddb does in
// a browser; here the state is carried over by hand) and reach the others once the server is
// back.
test('reload while offline: the locally kept edits arrive', async () => {
  const server = await startServer({ listen: await freeAddr() })
  const [s1, s2] = [pageSocket(server), pageSocket(server)]
  const a = openDocument(s1, 'notes/offline', { user: 'Ada' })
  const b = openDocument(s2, 'notes/offline', { user: 'Bob' })
  let s3, reloaded
  try {
    a.type('before. '); await a.settled(); await b.settled()
    await server.stop('SIGKILL')
    a.type('offline. ')
    await sleep(200)
    assert.ok(a.provider.unsyncedChanges > 0, 'not acknowledged while the server is down')
    const kept = Y.encodeStateAsUpdate(a.doc)
    cleanup(a, s1)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, kept)
    await server.restart()
    s3 = pageSocket(server)
    reloaded = openDocument(s3, 'notes/offline', { doc, user: 'Ada' })
    await reloaded.settled(8000)
    await waitFor(() => b.text() === 'before. offline. ', 8000, 'the offline edit at the other page')
  } finally {
    cleanup(b, reloaded ?? [], s2, s3 ?? [])
    await server.cleanup()
  }
})

// A Hocuspocus page and a y-websocket client in one document: same text, same presence.
test('Hocuspocus and y-websocket clients share a document and presence', async () => {
  const server = await startServer()
  const s1 = pageSocket(server)
  const h = openDocument(s1, 'notes/both', { user: 'Tiptap' })
  const y = connectClient(server.ws, 'notes/both')
  try {
    y.provider.awareness.setLocalStateField('user', { name: 'Classic' })
    await h.settled(); await y.waitSynced()
    h.type('from hocuspocus. ')
    await waitFor(() => y.text() === 'from hocuspocus. ', 5000, 'y-websocket sees the Hocuspocus edit')
    y.doc.getText('t').insert(y.text().length, 'from y-websocket.')
    await waitFor(() => h.text() === 'from hocuspocus. from y-websocket.', 5000, 'Hocuspocus sees the y-websocket edit')
    await waitFor(() => h.others().includes('Classic'), 5000, 'the Hocuspocus page sees the y-websocket presence')
    const names = () => [...y.provider.awareness.getStates().values()].map((s) => s.user?.name)
    await waitFor(() => names().includes('Tiptap'), 5000, 'the y-websocket client sees the Hocuspocus presence')
    const stats = await (await fetch(`${server.http}/api/stats`)).json()
    assert.deepEqual(stats.attachments, { 'y-websocket': 1, hocuspocus: 1 })
  } finally {
    cleanup(h, s1)
    y.destroy()
    await server.cleanup()
  }
})

// Stateless messages go to the document's other Hocuspocus pages, not back to the sender, and
// not to other documents.
test('stateless messages reach the other pages of the document', async () => {
  const server = await startServer()
  const [s1, s2] = [pageSocket(server), pageSocket(server)]
  const a = openDocument(s1, 'notes/signals')
  const b = openDocument(s2, 'notes/signals')
  const elsewhere = openDocument(s2, 'notes/other')
  try {
    await a.settled(); await b.settled(); await elsewhere.settled()
    a.provider.sendStateless(JSON.stringify({ event: 'comments-changed' }))
    await waitFor(() => b.seen.stateless.length === 1, 5000, 'the signal')
    assert.deepEqual(JSON.parse(b.seen.stateless[0]), { event: 'comments-changed' })
    await sleep(300)
    assert.deepEqual(a.seen.stateless, [])
    assert.deepEqual(elsewhere.seen.stateless, [])
  } finally {
    cleanup(a, b, elsewhere, s1, s2)
    await server.cleanup()
  }
})

const SECRET = 'hocuspocus-interop-secret'
const mint = (sub, docs, ttl = '1h') => mintToken(SECRET, sub, docs, ttl)
const sign = (claims, secret = SECRET) => signToken(claims, secret)
const now = () => Math.floor(Date.now() / 1000)

// With JWT auth, each document on one socket is authenticated by its own token: a writer's is
// read-write, a reader's readonly (its edits go nowhere), a forged or expired one is refused and
// receives nothing; the refusals leave the socket's other documents alone.
test('tokens per document on one socket', async () => {
  const server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET }, args: ['--jwt-leeway-s', '0'] })
  const writerSocket = pageSocket(server)
  const writer = openDocument(writerSocket, 'team/1', { token: mint('wes', ['team/*=write']) })
  const page = pageSocket(server)
  const docs = {
    write: openDocument(page, 'team/1', { token: mint('ada', ['team/*=write']) }),
    read: openDocument(page, 'team/2', { token: mint('ada', ['team/2=read']) }),
    forged: openDocument(page, 'team/3', { token: sign({ sub: 'eve', docs: { '**': 'admin' }, exp: now() + 600 }, 'wrong') }),
    expired: openDocument(page, 'team/4', { token: sign({ sub: 'ada', docs: { '**': 'write' }, exp: now() - 10 }) })
  }
  const writer2 = openDocument(writerSocket, 'team/2', { token: mint('wes', ['team/*=write']) })
  const writer3 = openDocument(writerSocket, 'team/3', { token: mint('wes', ['team/*=write']) })
  try {
    await writer.settled(); await writer2.settled(); await writer3.settled()
    await docs.write.settled(); await docs.read.settled()
    assert.equal(docs.write.seen.scope, 'read-write')
    assert.equal(docs.read.seen.scope, 'readonly')
    await waitFor(() => docs.forged.seen.denied.length && docs.expired.seen.denied.length, 5000, 'refusals')
    assert.deepEqual([docs.forged.seen.denied[0], docs.expired.seen.denied[0]], ['token_bad_signature', 'token_expired'])
    writer3.type('secret')
    writer2.type('for readers')
    await waitFor(() => docs.read.text() === 'for readers', 5000, 'the reader reads')
    docs.read.type(' + vandalism')
    await sleep(500)
    assert.equal(writer2.text(), 'for readers', "a reader's edit goes nowhere")
    assert.ok(docs.read.provider.unsyncedChanges > 0, "a reader's edit is not acknowledged as applied")
    assert.equal(docs.forged.text(), '', 'a refused document receives nothing')
    docs.write.type('still fine')
    await waitFor(() => writer.text() === 'still fine', 5000, 'the allowed document on the same socket')
    await docs.write.settled()
  } finally {
    cleanup(Object.values(docs), writer, writer2, writer3, page, writerSocket)
    await server.cleanup()
  }
})

// A token that expires during the session closes its document (a CLOSE with 4401) and not the
// socket's other documents.
test('an expiring token closes its document only', async () => {
  const server = await startServer({ env: { TANDEM_JWT_SECRET: SECRET }, args: ['--jwt-leeway-s', '0'] })
  const page = pageSocket(server)
  const short = openDocument(page, 'team/short', { token: sign({ sub: 'ada', docs: { '**': 'write' }, exp: now() + 2 }) })
  const long = openDocument(page, 'team/long', { token: mint('ada', ['team/*=write']) })
  try {
    await short.settled(); await long.settled()
    await waitFor(() => short.seen.closes.length > 0, 6000, 'the expiry')
    assert.match(short.seen.closes[0], /^4401 /)
    long.type('after the other expired')
    await long.settled()
    assert.equal(page.status, 'connected')
  } finally {
    cleanup(short, long, page)
    await server.cleanup()
  }
})

// Two editors of one document on one page's socket (`sessionAwareness`: the address is
// name + NUL + session): both are served on the same socket, see each other's edits and presence.
test('two providers of one document share a socket with sessionAwareness', async () => {
  const server = await startServer()
  const page = pageSocket(server)
  const left = openDocument(page, 'notes/split', { user: 'Left', sessionAwareness: true })
  const right = openDocument(page, 'notes/split', { user: 'Right', sessionAwareness: true })
  try {
    await left.settled(); await right.settled()
    left.type('from the left pane')
    await waitFor(() => right.text() === 'from the left pane', 5000, 'the other pane')
    await waitFor(() => right.others().includes('Left') && left.others().includes('Right'), 5000, 'presence between panes')
    await left.settled()
  } finally {
    cleanup(left, right, page)
    await server.cleanup()
  }
})

/** A raw Hocuspocus frame: varString(address), varUint(type), then `body` bytes. */
function frame (address, type, body = []) {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, address)
  encoding.writeVarUint(e, type)
  encoding.writeUint8Array(e, Uint8Array.from(body))
  return encoding.toUint8Array(e)
}
const SYNC_STEP1_EMPTY = [0, 1, 0] // SyncStep1 with an empty state vector (after the Sync type)
const tokenFrame = (address) => {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, address); encoding.writeVarUint(e, 2); encoding.writeVarUint(e, 0)
  encoding.writeVarString(e, 'dev'); encoding.writeVarString(e, '4.8.0')
  return encoding.toUint8Array(e)
}
/** A Stateless frame for `address` exactly `size` bytes long. */
function statelessOfSize (address, size) {
  for (let n = size; n > 0; n--) {
    const e = encoding.createEncoder()
    encoding.writeVarString(e, address); encoding.writeVarUint(e, 5); encoding.writeVarString(e, 'x'.repeat(n))
    const f = encoding.toUint8Array(e)
    if (f.length === size) return f
  }
  throw new Error(`no stateless frame of ${size} bytes`)
}
/** What the server said to each address: [type, sub-type or first body byte, text]. */
async function hocuspocusRaw (server) {
  const ws = new WebSocket(`ws://${server.addr}/hocuspocus`)
  ws.binaryType = 'arraybuffer'
  const sock = { ws, got: [], closed: null }
  ws.on('message', (data) => {
    const bytes = new Uint8Array(data)
    if (bytes.length === 1) return // v4 ping
    const d = decoding.createDecoder(bytes)
    const address = decoding.readVarString(d)
    const type = decoding.readVarUint(d)
    const sub = decoding.readVarUint(d)
    const text = type === 2 && sub !== 0 ? decoding.readVarString(d) : null
    sock.got.push({ address, type, sub, text })
  })
  ws.on('close', (code) => { sock.closed = code })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  sock.send = (f) => ws.send(f)
  sock.denied = (address) => sock.got.find((m) => m.address === address && m.type === 2 && m.sub === 1)?.text
  return sock
}

// The pre-authentication bounds of the real binary, set by their flags, at their edges: frames of
// documents whose token has not come are held (never applied) up to the bounds; the frame past a
// bound refuses only its own document; a document that then authenticates gets what it held
// answered.
test('pre-authentication bounds at their edges (flags of the real binary)', async () => {
  const server = await startServer({
    args: ['--preauth-docs-per-conn-max', '2', '--preauth-messages-per-conn-max', '4', '--preauth-bytes-per-conn-max', '300']
  })
  const socks = []
  try {
    const s = await hocuspocusRaw(server); socks.push(s)
    s.send(frame('a', 0, SYNC_STEP1_EMPTY))
    s.send(frame('b', 0, SYNC_STEP1_EMPTY))
    s.send(frame('c', 0, SYNC_STEP1_EMPTY)) // a third waiting document
    await waitFor(() => s.denied('c'), 5000, 'the third waiting document refused')
    assert.equal(s.denied('c'), 'preauth_documents_limit')
    s.send(frame('a', 1, [1, 0])) // a presence frame, as the provider sends: 3 held
    s.send(frame('a', 3)) // QueryAwareness: the 4th held frame, at the bound
    s.send(frame('b', 3)) // the 5th: b is refused, a keeps what it held
    await waitFor(() => s.denied('b'), 5000, 'the frame past the bound')
    assert.equal(s.denied('b'), 'preauth_messages_limit')
    assert.equal(s.denied('a'), undefined)
    s.send(tokenFrame('a'))
    await waitFor(() => s.got.some((m) => m.address === 'a' && m.type === 0 && m.sub === 1), 5000, "a's held SyncStep1 answered")
    assert.ok(s.got.some((m) => m.address === 'a' && m.type === 2 && m.sub === 2), 'a authenticated')
    assert.equal(s.closed, null, 'the socket stays open')

    const bytes = await hocuspocusRaw(server); socks.push(bytes)
    bytes.send(statelessOfSize('d', 300)) // exactly the bound: held
    bytes.send(statelessOfSize('e', 301)) // one byte past it, on its own: refused
    await waitFor(() => bytes.denied('e'), 5000, 'the 301-byte frame')
    assert.equal(bytes.denied('e'), 'preauth_bytes_limit')
    assert.equal(bytes.denied('d'), undefined)
    bytes.send(frame('d', 3)) // any byte more for d
    await waitFor(() => bytes.denied('d'), 5000, 'the byte past the bound')
    assert.equal(bytes.denied('d'), 'preauth_bytes_limit')
  } finally {
    for (const s of socks) s.ws.terminate()
    await server.cleanup()
  }
})
