// Hostile and malformed input from raw sockets: each gets its documented close code or HTTP
// status, the server stays healthy, and a stock client in the same room keeps syncing.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, connectClient, rawSocket, upgradeStatus, waitFor, syncStep1, readFrame } from './harness.mjs'

let server
before(async () => { server = await startServer() })
after(async () => { await server.cleanup() })

// Garbage frames close only the socket that sent them; a stock client in the room is unaffected.
test('garbage binary frames do not crash the server or disturb others', async () => {
  const good = connectClient(server.ws, 'hostile/room')
  const peer = connectClient(server.ws, 'hostile/room')
  await good.waitSynced(); await peer.waitSynced()
  const cases = [
    [Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff), 1007], // random bytes
    [Uint8Array.of(0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f), 1007], // huge length prefix
    [Uint8Array.of(0, 2, 10, 1, 2, 3), 1007], // truncated update
    [Uint8Array.of(0, 9, 0), 1007], // unknown sync step
    // A presence state that is not JSON: relayed, it made every stock client's JSON.parse throw
    // in its message handler (in Node an uncaught exception, which ends the process).
    [Uint8Array.of(1, 13, 1, 7, 1, 9, ...new TextEncoder().encode('{not json')), 1007],
    ['a text frame', 1003]
  ]
  for (const [frame, code] of cases) {
    const raw = await rawSocket(server.ws, 'hostile/room')
    raw.send(frame)
    const closed = await raw.waitClosed()
    assert.equal(closed.code, code, `frame ${frame}`)
  }
  // An unknown message type with a payload is ignored, not fatal.
  const tolerant = await rawSocket(server.ws, 'hostile/room')
  tolerant.send(Uint8Array.of(7, 1, 0))
  tolerant.send(Uint8Array.of(3))
  await waitFor(() => tolerant.messages.length >= 1, 5000, 'server still talks')
  assert.equal(tolerant.closed, null)
  tolerant.ws.close()

  assert.equal((await fetch(`${server.http}/health`)).status, 200)
  good.doc.getText('t').insert(0, 'still fine')
  await waitFor(() => peer.text() === 'still fine', 5000, 'room still syncs')
  good.destroy(); peer.destroy()
})

// Invalid document names are refused with 400 before any upgrade.
test('invalid document names get HTTP 400', async () => {
  for (const name of ['..%2Fetc', 'a'.repeat(300), 'a%20b', 'a//b', 'x%2F..%2Fy']) {
    assert.equal(await upgradeStatus(`${server.ws}/${name}`), 400, name)
  }
  const res = await fetch(`${server.http}/sync/a%20b`)
  assert.equal(res.status, 400)
  const body = await res.json()
  assert.equal(body.error.code, 'invalid_document_name')
  assert.equal(await upgradeStatus(`${server.ws}/fine/name-1.v2`), 101)
})

// The server opens with a SyncStep1 and answers a SyncStep1 with a SyncStep2, one message per frame.
test('server handshake: SyncStep1 first, SyncStep2 answers SyncStep1', async () => {
  const raw = await rawSocket(server.ws, 'hostile/handshake')
  await waitFor(() => raw.messages.length >= 1, 5000, 'first frame')
  const first = readFrame(raw.messages[0])
  assert.deepEqual([first.type, first.step], [0, 0])
  raw.send(syncStep1(Uint8Array.of(0)))
  await waitFor(() => raw.messages.some((m) => { const f = readFrame(m); return f.type === 0 && f.step === 1 }), 5000, 'SyncStep2')
  raw.ws.close()
})

// A frame over the configured limit closes the socket with 1009.
test('oversized frame gets 1009', async () => {
  const small = await startServer({ args: ['--frame-size-max-bytes', '4096'] })
  try {
    const raw = await rawSocket(small.ws, 'd')
    raw.send(new Uint8Array(5000))
    assert.equal((await raw.waitClosed()).code, 1009)
    assert.equal((await fetch(`${small.http}/health`)).status, 200)
  } finally { await small.cleanup() }
})
